package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// Env is what a fault sees: the cluster, its network (nil on loopback),
// and a log.
type Env struct {
	C    *Cluster
	Net  *Net
	Rand *rand.Rand
	Log  func(format string, args ...any)
	H    *History // the workloads' history (its clock)
	// Objects are the objects the workloads check; a fault that loses
	// some of them on purpose says which in Lost.
	Objects []objectRef
	Lost    *DiskLoss
	notes   []string
}

// Note records a remark for the report (e.g. a fault applied only in
// part).
func (e *Env) Note(s string) {
	for _, n := range e.notes {
		if n == s {
			return
		}
	}
	e.notes = append(e.notes, s)
}

// wait sleeps for d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// Scenario is a fault schedule run under workloads.
type Scenario struct {
	Name      string
	About     string
	Nodes     int
	NeedsNet  bool
	SmallDisk string // tmpfs size for node 0's data, if set
	// Extra flags for every node's "dura serve".
	Extra []string
	// Workloads, if set, are the only workloads the scenario can check
	// (the others are left out of its runs, with a note).
	Workloads []string
	// Fault injects faults until ctx ends; it must leave every node
	// running and the network healed when it returns.
	Fault func(ctx context.Context, e *Env) error
}

// Scenarios is the full set, by name.
var Scenarios = map[string]Scenario{
	"kill": {Name: "kill", About: "kill -9 a random node, restart it 4 s later; repeat", Nodes: 3,
		Fault: func(ctx context.Context, e *Env) error {
			for {
				i := e.Rand.IntN(len(e.C.Nodes))
				e.Log("kill -9 %s", e.C.Nodes[i].Name)
				if err := e.C.Kill(i); err != nil {
					return err
				}
				wait(ctx, 4*time.Second)
				if err := e.C.Restart(i); err != nil {
					return err
				}
				if !wait(ctx, 6*time.Second) {
					return nil
				}
			}
		}},
	"pause": {Name: "pause", About: "SIGSTOP a random node for 8 s (beyond the 5 s lease), then SIGCONT; repeat", Nodes: 3,
		Fault: func(ctx context.Context, e *Env) error {
			for {
				i := e.Rand.IntN(len(e.C.Nodes))
				e.Log("pause %s", e.C.Nodes[i].Name)
				if err := e.C.Pause(i); err != nil {
					return err
				}
				wait(context.Background(), 8*time.Second)
				if err := e.C.Resume(i); err != nil {
					return err
				}
				if !wait(ctx, 6*time.Second) {
					return nil
				}
			}
		}},
	"isolate": {Name: "isolate", About: "cut one node from the others (clients still reach it) for 10 s; repeat", Nodes: 3, NeedsNet: true,
		Fault: func(ctx context.Context, e *Env) error {
			return repeatNetFault(ctx, e, 10*time.Second, func() error {
				i := e.Rand.IntN(len(e.C.Nodes))
				var others []int
				for j := range e.C.Nodes {
					if j != i {
						others = append(others, j)
					}
				}
				e.Log("isolate %s", e.C.Nodes[i].Name)
				return e.Net.Split([]int{i}, others)
			})
		}},
	"replica-cut": {Name: "replica-cut", About: "cut the link between two of three nodes (both still reach the third) for 10 s, so each is a replica cut off from a primary that keeps writing; repeat", Nodes: 3, NeedsNet: true,
		Fault: func(ctx context.Context, e *Env) error {
			return repeatNetFault(ctx, e, 10*time.Second, func() error {
				perm := e.Rand.Perm(len(e.C.Nodes))
				e.Log("cut %s <-> %s", e.C.Nodes[perm[0]].Name, e.C.Nodes[perm[1]].Name)
				return e.Net.Cut(perm[0], perm[1])
			})
		}},
	"split": {Name: "split", About: "split five nodes into a minority of 2 and a majority of 3 for 12 s; repeat", Nodes: 5, NeedsNet: true,
		Fault: func(ctx context.Context, e *Env) error {
			return repeatNetFault(ctx, e, 12*time.Second, func() error {
				perm := e.Rand.Perm(len(e.C.Nodes))
				minority, majority := perm[:2], perm[2:]
				e.Log("split %v | %v", minority, majority)
				return e.Net.Split(minority, majority)
			})
		}},
	"leader": {Name: "leader", About: "kill -9 the Raft leader, restart it 3 s later; repeat", Nodes: 3,
		Fault: func(ctx context.Context, e *Env) error {
			for {
				i, err := e.C.Leader(ctx)
				if err != nil {
					if !wait(ctx, time.Second) {
						return nil
					}
					continue
				}
				e.Log("kill -9 leader %s", e.C.Nodes[i].Name)
				if err := e.C.Kill(i); err != nil {
					return err
				}
				wait(ctx, 3*time.Second)
				if err := e.C.Restart(i); err != nil {
					return err
				}
				if !wait(ctx, 5*time.Second) {
					return nil
				}
			}
		}},
	"degrade": {Name: "degrade", About: "20 % packet loss and 200 ms delay on every node's links to the others, 15 s on, 5 s off", Nodes: 3, NeedsNet: true,
		Fault: func(ctx context.Context, e *Env) error {
			for {
				for i := range e.C.Nodes {
					did, err := e.Net.Degrade(i, 200*time.Millisecond, 20)
					if err != nil {
						return err
					}
					e.Note(did)
				}
				e.Log("degraded")
				wait(context.Background(), 15*time.Second)
				if err := e.Net.HealAll(len(e.C.Nodes)); err != nil {
					return err
				}
				if !wait(ctx, 5*time.Second) {
					return nil
				}
			}
		}},
	"membership": {Name: "membership", About: "a fourth node joins under load, then a founder leaves (SIGTERM) and rejoins; repeat", Nodes: 3,
		Fault: func(ctx context.Context, e *Env) error {
			if _, err := e.C.AddNode(); err != nil {
				return err
			}
			e.Log("added %s", e.C.Nodes[len(e.C.Nodes)-1].Name)
			wait(ctx, 8*time.Second)
			for {
				i := e.Rand.IntN(len(e.C.Nodes))
				e.Log("%s leaves", e.C.Nodes[i].Name)
				if err := e.C.Stop(i, 90*time.Second); err != nil {
					return err
				}
				wait(ctx, 3*time.Second)
				if err := e.C.Restart(i); err != nil {
					return err
				}
				if !wait(ctx, 8*time.Second) {
					return nil
				}
			}
		}},
	"rolling": {Name: "rolling", About: "rolling restart: SIGTERM each node in turn, restart it, wait until ready", Nodes: 3,
		Fault: func(ctx context.Context, e *Env) error {
			for k := 0; ; k++ {
				i := k % len(e.C.Nodes)
				e.Log("rolling restart of %s", e.C.Nodes[i].Name)
				if err := e.C.Stop(i, 90*time.Second); err != nil {
					return err
				}
				if err := e.C.Restart(i); err != nil {
					return err
				}
				if err := e.C.WaitReady(context.Background(), 60*time.Second); err != nil {
					return err
				}
				if !wait(ctx, 2*time.Second) {
					return nil
				}
			}
		}},
	"disk": {Name: "disk", About: "node 1's data directory is a 64 MiB tmpfs that a writer fills with 256 KiB rows; then the disk grows to 512 MiB (the operator adds space)", Nodes: 3, SmallDisk: "64m",
		Fault: func(ctx context.Context, e *Env) error {
			blob := strings.Repeat("x", 256<<10)
			full := 0
			for k := 0; ctx.Err() == nil; k++ {
				name := fmt.Sprintf("fill-%d", k%64)
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := e.C.Admin(0).SQL(wctx, "db", name, sqlStmt("CREATE TABLE IF NOT EXISTS f (b BLOB)"), sqlStmt("INSERT INTO f VALUES (?)", blob))
				cancel()
				if err != nil {
					full++
					if full == 1 || full%50 == 0 {
						e.Log("fill write refused (%d so far): %v", full, err)
					}
					wait(ctx, 200*time.Millisecond)
				}
			}
			e.Note(fmt.Sprintf("%d fill writes refused", full))
			return e.C.GrowDisk("512m")
		}},
	"gone": {Name: "gone", Nodes: 3, Extra: []string{"--dead-member-timeout", "10s"}, Fault: gone,
		About: "kill -9 a node and never restart it: its objects fail over to in-sync replicas, the leader removes it after --dead-member-timeout (10 s here) and the two others hold every partition in sync; at the end its disk is wiped and it starts again as a new member"},
	"disklost": {Name: "disklost", Nodes: 3, Fault: diskLost,
		About: "kill -9 a node, delete its data directory, restart it with the same command line. With replicas (the default) nothing may be lost: its partitions fail over and it is seeded again. With one copy its objects answer 503 or hold everything, never empty; then it is stopped, `dura node remove --force`d through another node and started again as a new member (its objects restart empty: counted)",
		// The bank's one object and the reminders would be lost whole
		// if the wiped node owned them; their checkers do not split.
		Workloads: []string{Counters, Registers, Sharded}},
}

// repeatNetFault applies a network fault, holds it, heals every link,
// lets the cluster run 6 s, and goes again until ctx ends.
func repeatNetFault(ctx context.Context, e *Env, hold time.Duration, apply func() error) error {
	for {
		if err := apply(); err != nil {
			return err
		}
		wait(context.Background(), hold)
		if err := e.Net.HealAll(len(e.C.Nodes)); err != nil {
			return err
		}
		if !wait(ctx, 6*time.Second) {
			return nil
		}
	}
}

// Short is the representative set `go test -short ./chaos` runs.
var Short = []string{"kill", "pause", "isolate", "leader"}

// Full is every scenario, in the order a full run takes them.
var Full = []string{"kill", "pause", "isolate", "replica-cut", "split", "leader", "degrade", "membership", "rolling", "disk", "disklost", "gone"}

// RunOptions configure one scenario run.
type RunOptions struct {
	Bin       string
	Dir       string
	Duration  time.Duration // of the fault phase
	Workloads []string
	Log       func(format string, args ...any)
	// Compose, if set (the repository's root), runs the scenario on the
	// deploy/ compose cluster instead of processes.
	Compose string
}

// Run runs one scenario and checks its history.
func Run(ctx context.Context, sc Scenario, opt RunOptions) (rep ScenarioReport, err error) {
	var left []string
	if sc.Workloads != nil {
		var keep []string
		for _, w := range opt.Workloads {
			if contains(sc.Workloads, w) {
				keep = append(keep, w)
			} else {
				left = append(left, w)
			}
		}
		opt.Workloads = keep
	}
	rep = ScenarioReport{Name: sc.Name, About: sc.About, Nodes: sc.Nodes, Duration: opt.Duration.String(), Workloads: opt.Workloads}
	if len(left) > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("workloads %v left out: this scenario checks only %v", left, sc.Workloads))
	}
	c, nt, err := startScenario(ctx, sc, opt, &rep)
	if nt != nil {
		defer nt.Close()
	}
	if err != nil {
		return rep, err
	}
	defer c.Close()
	defer func() {
		if err != nil || !rep.Pass {
			rep.Logs = c.Logs(40)
			if dir, kerr := c.KeepLogs(sc.Name); kerr == nil {
				rep.Notes = append(rep.Notes, "node logs kept in "+dir)
			}
		}
	}()
	host := "127.0.0.1"
	if nt != nil {
		host = nt.Host()
	}
	hook, err := startWebhook(host, 200*time.Millisecond, 300*time.Millisecond)
	if err != nil {
		return rep, err
	}
	defer hook.close()
	h := NewHistory()
	d := &driver{c: c, h: h, objects: 8, clients: 4, hook: hook}
	if contains(opt.Workloads, Bank) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.bankSetup(sctx)
		cancel()
		if err != nil {
			return rep, fmt.Errorf("bank setup: %w", err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range opt.Workloads {
		d.run(w, stop, &wg)
	}
	env := &Env{C: c, Net: nt, Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), Log: opt.Log,
		H: h, Objects: d.workloadObjects(opt.Workloads)}
	fctx, cancel := context.WithTimeout(ctx, opt.Duration)
	ferr := sc.Fault(fctx, env)
	cancel()
	healed := time.Now()
	healAll(c, nt)
	werr := c.WaitReady(ctx, 120*time.Second)
	rep.ConvergeMs = time.Since(healed).Milliseconds()
	var lagging error // the history is checked all the same
	if werr == nil {
		lagging = c.WaitInSync(ctx, 120*time.Second)
		rep.InSyncMs = time.Since(healed).Milliseconds()
	}
	// Let the workloads run on the healed cluster a little, then stop.
	wait(ctx, 3*time.Second)
	close(stop)
	wg.Wait()
	rep.Notes = append(rep.Notes, env.notes...)
	if err := errors.Join(ferr, werr); err != nil {
		return rep, err
	}
	final, err := d.finalReads(ctx, opt.Workloads)
	if err != nil {
		return rep, errors.Join(lagging, err)
	}
	if contains(opt.Workloads, Alarms) {
		d.awaitAlarms(ctx, 90*time.Second)
	}
	if lagging != nil {
		rep.Error = lagging.Error()
	}
	rep.check(h, final, hook.deliveries(), env.Lost)
	for _, e := range c.UnexpectedExits() {
		rep.Findings.UnexpectedExits++
		rep.Findings.evidence("%s", e)
	}
	rep.Pass = rep.Pass && rep.Findings.UnexpectedExits == 0
	return rep, nil
}

// finalState is what the final reads found.
type finalState struct {
	Counters map[string]int64
	Bank     *bankState
	Sharded  map[string]shardedFinal
}

// finalReads reads every counter (and register, and the bank) once the
// cluster is healed, retrying until each read succeeds.
func (d *driver) finalReads(ctx context.Context, workloads []string) (finalState, error) {
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	final := finalState{Counters: map[string]int64{}, Sharded: map[string]shardedFinal{}}
	for k := range d.objects {
		for _, w := range workloads {
			var op Op
			err := retry(rctx, func() error {
				switch w {
				case Counters:
					op = d.readCounter(counterName(k), k%len(d.c.Nodes))
				case Registers:
					op = d.registerRead(registerName(k), k%len(d.c.Nodes), -1)
				case Bank:
					if k > 0 {
						return nil
					}
					st, err := d.readBank(rctx, 0)
					final.Bank = st
					return err
				case Sharded:
					if k >= shardedNames {
						return nil
					}
					st, err := d.readSharded(rctx, shardedName(k), k%len(d.c.Nodes))
					final.Sharded[shardedName(k)] = st
					return err
				default:
					return nil
				}
				if op.Outcome != OK {
					return errors.New(op.Err)
				}
				return nil
			})
			if err != nil {
				return final, fmt.Errorf("final read of %s %d: %w", w, k, err)
			}
			if w == Counters {
				final.Counters[op.Object] = op.Result
			}
		}
	}
	return final, nil
}

// awaitAlarms waits until every acknowledged reminder has been delivered,
// or timeout.
func (d *driver) awaitAlarms(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var f Findings
		checkAlarms(d.h.Ops(Alarms), d.hook.deliveries(), &f)
		if f.AlarmsMissed == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Names lists scenario names in a stable order.
func Names() []string {
	out := make([]string, 0, len(Scenarios))
	for n := range Scenarios {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// startScenario starts the cluster sc runs on: the compose containers, or
// processes (in network namespaces where the scenario needs them or they
// are available). A Net it made is returned even with an error, to close.
func startScenario(ctx context.Context, sc Scenario, opt RunOptions, rep *ScenarioReport) (*Cluster, *Net, error) {
	if opt.Compose != "" {
		if sc.NeedsNet || sc.SmallDisk != "" || sc.Nodes != 3 || contains(opt.Workloads, Alarms) {
			return nil, nil, fmt.Errorf("scenario %s with %v cannot run on the compose cluster (three containers, process faults, no webhook)", sc.Name, opt.Workloads)
		}
		rep.Name += " (compose)"
		c, err := StartCompose(ctx, opt.Compose)
		return c, nil, err
	}
	var nt *Net
	if sc.NeedsNet || NetAvailable() == "" {
		if why := NetAvailable(); why != "" {
			return nil, nil, fmt.Errorf("scenario %s needs network namespaces: %s", sc.Name, why)
		}
		var err error
		if nt, err = NewNet(); err != nil {
			return nil, nil, err
		}
	}
	c, err := StartCluster(ctx, ClusterOptions{Nodes: sc.Nodes, Bin: opt.Bin, Dir: opt.Dir, Net: nt,
		Secret: "chaos-cluster-secret-0123", Token: "chaos-admin-token", SmallDisk: sc.SmallDisk, Extra: sc.Extra})
	return c, nt, err
}

// healAll undoes whatever a fault left behind: heals the network, wakes
// and starts every node (one that exited on its own is a finding).
func healAll(c *Cluster, nt *Net) {
	if nt != nil {
		nt.HealAll(len(c.Nodes))
	}
	for _, nd := range c.nodes() {
		running, paused := nd.status()
		if paused {
			c.Resume(nd.Index)
		}
		if !running {
			c.Restart(nd.Index)
		}
	}
}
