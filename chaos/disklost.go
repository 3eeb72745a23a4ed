package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/dura-dev/dura/rpc"
)

// The disk-lost scenario: a node is killed, its data directory deleted
// and the node started again with the same command line (a replaced
// disk). On a cluster keeping copies (the default) nothing may be lost:
// every object is checked whole (diskLostReplicated). With one copy
// (--replication-factor 1), until an operator acts, the objects it owned must be refused
// (503 "missing on node") or served with everything acknowledged, never
// served empty. The operator then removes it the documented way: the
// wiped process is killed (a removal refuses a member gossip does not
// see dead: "stop it instead of removing it"), `dura node remove --force`
// is sent to another node's admin API, and the process is started again
// with the same command line, which, the member having been removed,
// rejoins as a new and empty member and is given partitions by ordinary
// handoff. After the removal the wiped node's objects restart empty on
// their new owners: with one copy that loss is expected, so
// for those objects alone (as owned when the disk was lost) the history
// is checked as two: before the removal was asked for, and from its
// answer on; the objects that had acknowledged data are counted
// (Findings.DiskLost), not hidden. Every other object is checked whole.

// objectRef names a workload object.
type objectRef struct{ Class, Name string }

// DiskLoss is what the scenario did, for the checkers. Times are history
// offsets.
type DiskLoss struct {
	Node    string          // the wiped node
	Objects map[string]bool // workload objects it owned when it was killed
	Owned   int
	Killed  time.Duration // the SIGKILL before the wipe
	// RemoveAsked and Removed bracket the removal request: an operation
	// in between may have run on either side of it.
	RemoveAsked, Removed time.Duration
}

// workloadObjects are the objects whose data the workloads check.
func (d *driver) workloadObjects(workloads []string) []objectRef {
	var out []objectRef
	for k := range d.objects {
		if contains(workloads, Counters) {
			out = append(out, objectRef{"counter", counterName(k)})
		}
		if contains(workloads, Registers) {
			out = append(out, objectRef{"db", registerName(k)})
		}
	}
	if contains(workloads, Sharded) {
		for k := range shardedNames {
			for s := range int64(shardCount) {
				out = append(out, objectRef{"counter", shardObject(shardedName(k), s)})
			}
		}
	}
	return out
}

// diskLost is the scenario's fault (see the top of this file).
func diskLost(ctx context.Context, e *Env) error {
	wait(ctx, 5*time.Second)
	n := len(e.C.Nodes)
	i := e.Rand.IntN(n)
	other := (i + 1) % n
	victim := e.C.Nodes[i]
	owners, err := e.C.owners(other, e.Objects)
	if err != nil {
		return err
	}
	loss := &DiskLoss{Node: victim.Name, Objects: map[string]bool{}}
	for name, owner := range owners {
		if owner == victim.Name {
			loss.Objects[name] = true
		}
	}
	loss.Owned = len(loss.Objects)
	info, err := e.C.Admin(other).Cluster(ctx)
	if err != nil {
		return err
	}
	if info.ReplicationFactor >= 2 {
		return diskLostReplicated(ctx, e, i, other, loss.Owned, len(owners))
	}
	e.Lost = loss
	e.Log("kill -9 %s (owns %d of %d workload objects), delete %s, restart it", victim.Name, loss.Owned, len(owners), victim.Dir)
	loss.Killed = e.H.Now()
	if err := e.C.Kill(i); err != nil {
		return err
	}
	if err := os.RemoveAll(victim.Dir); err != nil {
		return fmt.Errorf("wipe %s: %w", victim.Dir, err)
	}
	if err := e.C.Restart(i); err != nil {
		return err
	}
	err = poll(60*time.Second, fmt.Sprintf("%s shown data_missing by %s", victim.Name, e.C.Nodes[other].Name), func() error {
		info, err := e.C.Admin(other).Cluster(context.Background())
		if err != nil {
			return err
		}
		for _, m := range info.Members {
			if m.Name == victim.Name && m.DataMissing {
				return nil
			}
		}
		return fmt.Errorf("members %+v", info.Members)
	})
	if err != nil {
		return err
	}
	e.Log("%s is data_missing; its objects stay refused for 10 s", victim.Name)
	wait(ctx, 10*time.Second)
	e.Log("operator: stop %s, remove it with --force through %s", victim.Name, e.C.Nodes[other].Name)
	if err := e.C.Kill(i); err != nil {
		return err
	}
	loss.RemoveAsked = e.H.Now()
	if err := e.C.removeMember(other, victim.Name); err != nil {
		return err
	}
	loss.Removed = e.H.Now()
	e.Log("%s removed after %s; restart it with the same command line (a new member)", victim.Name, (loss.Removed - loss.RemoveAsked).Round(time.Millisecond))
	if err := e.C.Restart(i); err != nil {
		return err
	}
	if err := e.C.WaitReady(context.Background(), 90*time.Second); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// diskLostReplicated is the disk-lost fault on a cluster keeping copies:
// nothing may be lost at all, so every object is checked whole. The
// wiped node's partitions fail over, it takes its new disk, and it is
// seeded again; the time until nothing is under-replicated is noted.
func diskLostReplicated(ctx context.Context, e *Env, i, other, owned, total int) error {
	victim := e.C.Nodes[i]
	e.Log("kill -9 %s (primary of %d of %d workload objects), delete %s, restart it; with replicas nothing may be lost", victim.Name, owned, total, victim.Dir)
	if err := e.C.Kill(i); err != nil {
		return err
	}
	if err := os.RemoveAll(victim.Dir); err != nil {
		return fmt.Errorf("wipe %s: %w", victim.Dir, err)
	}
	restarted := time.Now()
	if err := e.C.Restart(i); err != nil {
		return err
	}
	// First the cluster notices the empty disk (data missing, or copies
	// out of sync), then it heals.
	noticed := poll(30*time.Second, "the wiped "+victim.Name+" noticed", func() error {
		info, err := e.C.Admin(other).Cluster(context.Background())
		if err != nil {
			return err
		}
		for _, m := range info.Members {
			if m.DataMissing {
				return nil
			}
		}
		if info.UnderReplicated > 0 {
			return nil
		}
		return errors.New("nothing under-replicated yet")
	})
	if noticed != nil {
		e.Note(fmt.Sprintf("the wiped %s was never seen missing data or out of sync (it healed between two looks, 200 ms apart, or was not noticed): %v", victim.Name, noticed))
	}
	err := poll(120*time.Second, victim.Name+" seeded again, nothing under-replicated", func() error {
		info, err := e.C.Admin(other).Cluster(context.Background())
		if err != nil {
			return err
		}
		for _, m := range info.Members {
			if m.DataMissing {
				return fmt.Errorf("%s still data_missing", m.Name)
			}
		}
		if info.UnderReplicated != 0 {
			return fmt.Errorf("%d partitions under-replicated", info.UnderReplicated)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.Note(fmt.Sprintf("the wiped %s was seeded again and nothing was under-replicated %s after its restart", victim.Name, time.Since(restarted).Round(100*time.Millisecond)))
	<-ctx.Done()
	return nil
}

// owners asks node via for the owner of each object (GET
// /v1/objects/{class}/{name} answers from the owner, without creating
// the object).
func (c *Cluster) owners(via int, objs []objectRef) (map[string]string, error) {
	out := map[string]string{}
	for _, o := range objs {
		err := poll(20*time.Second, "owner of "+o.Class+"/"+o.Name, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			info, err := c.Admin(via).Info(ctx, o.Class, o.Name)
			out[o.Name] = info.Owner
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// removeMember is `dura node remove --force name` sent to node via. It
// retries while the cluster refuses because gossip has not declared the
// stopped member dead yet (409), and waits for the answer longer than the
// workloads' client does: a removal waits out two leases.
func (c *Cluster) removeMember(via int, name string) error {
	cl := rpc.NewClient(c.Nodes[via].client.Base(), &http.Client{Timeout: 60 * time.Second}).WithToken(c.opt.Token)
	return poll(120*time.Second, "removal of "+name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		resp, err := cl.Do(ctx, http.MethodPost, "/v1/cluster/members/"+url.PathEscape(name)+"/remove?force=true", nil, nil)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
}

// poll calls fn until it succeeds or timeout passes, and then says what
// it waited for and the last error.
func poll(timeout time.Duration, what string, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %w", timeout, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lostSuffix names the part before the removal of a lost object's
// history, which is checked on its own.
const lostSuffix = "@before-removal"

// split separates the histories of the objects the wiped node owned:
// their operations completed before the removal was asked for go to
// before, renamed obj+lostSuffix (checked like any history, without a
// final read: a wiped object refused is fine, served empty or stale is
// not); those called after it was answered stay in after under their own
// name, a history that starts empty and ends with the final read. One in
// between may have run on either side: in after it counts as uncertain
// (a refused one is dropped). Everything else goes to after unchanged.
// obj gives the object an operation acted on, "" if that is not known (a
// sharded increment not acknowledged: its shard is unknown); those go to
// after as they are. Sharded operations are renamed by their counter.
func (l *DiskLoss) split(ops []Op, obj func(Op) string) (before, after []Op) {
	for _, op := range ops {
		o := obj(op)
		if l == nil || !l.Objects[o] {
			after = append(after, op)
			continue
		}
		switch {
		case op.Complete < l.RemoveAsked:
			op.Object += lostSuffix
			before = append(before, op)
		case op.Invoke > l.Removed:
			after = append(after, op)
		case op.Outcome != Fail:
			op.Outcome = Unknown
			after = append(after, op)
		}
	}
	return before, after
}

// wrote says whether an acknowledged operation left data behind.
func wrote(op Op) bool {
	return op.Outcome == OK && (op.Kind == "incr" || op.Kind == "write" || op.Kind == "cas" && op.Success)
}

// lostObjects counts the wiped node's objects that had acknowledged
// writes before the removal (they restart empty after it), by name.
func lostObjects(before []Op, obj func(Op) string) map[string]bool {
	out := map[string]bool{}
	for _, op := range before {
		if wrote(op) {
			out[strings.TrimSuffix(obj(op), lostSuffix)] = true
		}
	}
	return out
}

// refusedMissing counts operations refused because a node's data was
// missing.
func refusedMissing(ops []Op) int {
	n := 0
	for _, op := range ops {
		if op.Outcome == Fail && strings.Contains(op.Err, "missing on node") {
			n++
		}
	}
	return n
}

// checkDiskLoss runs the counter, register and sharded checks with the
// wiped node's objects split (DiskLoss.split) and reports the expected
// loss; with loss nil they are the plain checks.
func checkDiskLoss(h *History, final finalState, workloads []string, loss *DiskLoss, f *Findings) (notes []string) {
	byName := func(op Op) string { return op.Object }
	// A sharded increment acted on its shard's counter; the shard of one
	// not acknowledged is unknown.
	byShard := func(op Op) string {
		if op.Outcome != OK {
			return ""
		}
		return shardObject(strings.TrimSuffix(op.Object, lostSuffix), op.Arg2)
	}
	lost := map[string]bool{}
	cb, ca := loss.split(h.Ops(Counters), byName)
	if len(cb) > 0 {
		checkCounters(cb, nil, f)
	}
	checkCounters(ca, final.Counters, f)
	for o := range lostObjects(cb, byName) {
		lost[o] = true
	}
	if regs := h.Ops(Registers); len(regs) > 0 {
		rb, ra := loss.split(regs, byName)
		checkRegisters(append(rb, ra...), registerBudget, f)
		notes = append(notes, fmt.Sprintf("registers checked in %s of a %s budget", time.Duration(f.CheckMs)*time.Millisecond, registerBudget))
		for o := range lostObjects(rb, byName) {
			lost[o] = true
		}
	}
	if contains(workloads, Sharded) {
		sb, sa := loss.split(h.Ops(Sharded), byShard)
		if len(sb) > 0 {
			checkSharded(sb, nil, f)
		}
		checkSharded(sa, final.Sharded, f)
		for o := range lostObjects(sb, byShard) {
			lost[o] = true
		}
	}
	if loss == nil {
		return notes
	}
	f.DiskLost = len(lost)
	names := make([]string, 0, len(lost))
	for o := range lost {
		names = append(names, o)
	}
	sort.Strings(names)
	notes = append(notes, fmt.Sprintf("%s's disk was wiped: it owned %d workload objects; %d ops were refused as missing on a node; after its removal %d objects that had acknowledged data restarted empty (an expected loss until replication exists): %s",
		loss.Node, loss.Owned, refusedMissing(h.Ops("")), len(lost), strings.Join(names, " ")))
	return notes
}

// gone is the "gone" scenario's fault: a node killed for good, removed by
// the leader once dead past --dead-member-timeout, while the others keep
// serving its objects from their in-sync copies; at the end its disk is
// wiped and it starts again, a new member, so the checks run on three.
func gone(ctx context.Context, e *Env) error {
	wait(ctx, 5*time.Second)
	i := e.Rand.IntN(len(e.C.Nodes))
	other := (i + 1) % len(e.C.Nodes)
	victim := e.C.Nodes[i]
	e.Log("kill -9 %s for good", victim.Name)
	killed := time.Now()
	if err := e.C.Kill(i); err != nil {
		return err
	}
	removed := false
	for ctx.Err() == nil {
		info, err := e.C.Admin(other).Cluster(ctx)
		if err == nil {
			for _, m := range info.Members {
				if m.Name == victim.Name && m.Status == "removed" && !removed {
					removed = true
					e.Note(fmt.Sprintf("%s removed by the leader %s after the kill", victim.Name, time.Since(killed).Round(100*time.Millisecond)))
				}
			}
			if removed && info.UnderReplicated == 0 {
				e.Note(fmt.Sprintf("every partition in sync on the two others %s after the kill", time.Since(killed).Round(100*time.Millisecond)))
				break
			}
		}
		wait(ctx, 200*time.Millisecond)
	}
	wait(ctx, time.Hour) // the rest of the fault phase on two nodes
	if !removed {
		return fmt.Errorf("%s was not removed within the fault phase (%s after the kill)", victim.Name, time.Since(killed).Round(time.Second))
	}
	e.Log("wipe %s and start it again: a new member", victim.Name)
	if err := os.RemoveAll(victim.Dir); err != nil {
		return fmt.Errorf("wipe %s: %w", victim.Dir, err)
	}
	return e.C.Restart(i)
}
