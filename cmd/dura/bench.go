package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // the raw baseline

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["bench"] = command{summary: "load a running node and report throughput and latency (--baseline: against raw SQLite too)", run: runBench}
}

type benchConfig struct {
	addr     string
	token    string
	scenario string
	objects  int
	clients  int
	duration time.Duration
	baseline bool
	prefix   string
	progress bool
}

// benchResult is one measured run.
type benchResult struct {
	label     string
	ops       int64
	errors    int64
	elapsed   time.Duration
	latencies []time.Duration
	peakRSS   float64 // bytes, server side, sampled from /metrics
	peakFDs   float64
	fdLimit   float64
}

func (r benchResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func (r benchResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(r.latencies)-1))
	return r.latencies[i]
}

// benchScenario is one load "dura bench --scenario" can run; the help,
// the flag's text and the error for an unknown name all come from
// benchScenarios, so none of them can miss one.
type benchScenario struct {
	name, summary string
	run           func(ctx context.Context, env *cliEnv, c benchConfig, clis []*rpc.Client) ([]benchResult, error)
}

var benchScenarios = []benchScenario{
	{"counter", "counter increments over --objects objects from --clients clients", benchCounter},
	{"cold", "each request activates a fresh object (open, constructor, first write)", benchCold},
	{"touch", "touch --objects distinct objects once each; reports the server's peak RSS and open files", func(ctx context.Context, env *cliEnv, c benchConfig, clis []*rpc.Client) ([]benchResult, error) {
		fmt.Fprintf(env.stdout, "touch %d distinct objects once each, %d clients\n", c.objects, c.clients)
		r, err := benchTouch(ctx, env, c, clis[0])
		return []benchResult{r}, err
	}},
	{"forward", "one object, one client: through its owner, then through another node (needs 2+ --addr)", benchForward},
}

// benchScenarioNames is "counter, cold, touch or forward".
func benchScenarioNames() string {
	var names []string
	for _, sc := range benchScenarios {
		names = append(names, sc.name)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func runBench(ctx context.Context, env *cliEnv, args []string) error {
	var c benchConfig
	synopsis := "bench [flags]\n\nScenarios:"
	for _, sc := range benchScenarios {
		synopsis += fmt.Sprintf("\n  %-8s %s", sc.name, sc.summary)
	}
	fs := newFlagSet(env, "bench", synopsis)
	fs.StringVar(&c.addr, "addr", "http://127.0.0.1:8080", "node(s) to load, comma-separated: each request goes to a random one")
	fs.StringVar(&c.token, "token", "", "bearer token (for the /metrics sampling through /v1 routes it is not needed)")
	fs.StringVar(&c.scenario, "scenario", "counter", benchScenarioNames())
	fs.IntVar(&c.objects, "objects", 64, "distinct objects")
	fs.IntVar(&c.clients, "clients", 16, "concurrent clients")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured run (counter and cold)")
	fs.BoolVar(&c.baseline, "baseline", false, "also run the same commits straight against go-sqlite3 files (same pragmas) and print the ratio")
	fs.StringVar(&c.prefix, "prefix", "", "object name prefix (default: unique per run)")
	fs.BoolVar(&c.progress, "progress", true, "draw a progress bar on stderr")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if c.objects <= 0 || c.clients <= 0 || c.duration <= 0 {
		return usageErr("--objects, --clients and --duration must be positive")
	}
	i := slices.IndexFunc(benchScenarios, func(sc benchScenario) bool { return sc.name == c.scenario })
	if i < 0 {
		return usageErr("unknown --scenario %q (%s)", c.scenario, benchScenarioNames())
	}
	if c.prefix == "" {
		c.prefix = fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	}
	var clis []*rpc.Client
	for _, a := range strings.Split(c.addr, ",") {
		cl := rpc.NewClient(strings.TrimSpace(a), nil).WithToken(c.token)
		if err := cl.Health(ctx); err != nil {
			return fmt.Errorf("node at %s is not answering: %w (start one with \"dura serve\")", a, err)
		}
		clis = append(clis, cl)
	}
	results, err := benchScenarios[i].run(ctx, env, c, clis)
	if err != nil {
		return err
	}
	printBench(env.stdout, results)
	return nil
}

func benchCounter(ctx context.Context, env *cliEnv, c benchConfig, clis []*rpc.Client) ([]benchResult, error) {
	fmt.Fprintf(env.stdout, "counter increments: %d objects, %d clients, %s per run\n", c.objects, c.clients, c.duration)
	if c.baseline {
		fmt.Fprintf(env.stdout, "both sides pick each request's object uniformly at random among the %d and run one event at a time per object\n", c.objects)
	}
	r, err := benchDura(ctx, env, c, clis, func(i int64, rnd *rand.Rand) string {
		return c.prefix + strconv.Itoa(rnd.IntN(c.objects))
	})
	if err != nil || !c.baseline {
		return []benchResult{r}, err
	}
	raw, err := benchRaw(ctx, env, c, false)
	return []benchResult{r, raw}, err
}

func benchCold(ctx context.Context, env *cliEnv, c benchConfig, clis []*rpc.Client) ([]benchResult, error) {
	fmt.Fprintf(env.stdout, "cold activations: a fresh object per request, %d clients, %s per run\n", c.clients, c.duration)
	r, err := benchDura(ctx, env, c, clis, func(i int64, _ *rand.Rand) string {
		return c.prefix + "cold-" + strconv.FormatInt(i, 10)
	})
	if err != nil || !c.baseline {
		return []benchResult{r}, err
	}
	raw, err := benchRaw(ctx, env, c, true)
	return []benchResult{r, raw}, err
}

// load runs op from c.clients goroutines until the deadline or until
// total ops are done (total > 0), recording each latency.
func load(ctx context.Context, env *cliEnv, c benchConfig, label string, total int64, op func(i int64, rnd *rand.Rand) error) benchResult {
	var next, done, failed atomic.Int64
	deadline := time.Now().Add(c.duration)
	lats := make([][]time.Duration, c.clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stopBar := startProgress(env, c, label, deadline, total, &done)
	start := time.Now()
	for w := 0; w < c.clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if total > 0 && i >= total || total == 0 && time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				if err := op(i, rnd); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopBar()
	r := benchResult{label: label, ops: done.Load(), errors: failed.Load(), elapsed: elapsed}
	for _, l := range lats {
		r.latencies = append(r.latencies, l...)
	}
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(env.stderr, "%s: %d errors, first: %v\n", label, r.errors, e)
	}
	return r
}

func startProgress(env *cliEnv, c benchConfig, label string, deadline time.Time, total int64, done *atomic.Int64) func() {
	if !c.progress {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(env.stderr, "\r\033[K")
				return
			case <-t.C:
			}
			var frac float64
			if total > 0 {
				frac = float64(done.Load()) / float64(total)
			} else {
				frac = float64(time.Since(start)) / float64(deadline.Sub(start))
			}
			frac = min(frac, 1)
			bar := strings.Repeat("=", int(frac*30)) + ">" + strings.Repeat(" ", 30-int(frac*30))
			rate := float64(done.Load()) / time.Since(start).Seconds()
			fmt.Fprintf(env.stderr, "\r%-14s [%s] %3.0f%% %8d ops %8.0f/s", label, bar, frac*100, done.Load(), rate)
		}
	}()
	return func() { close(stop); <-finished }
}

// benchDura increments counters through the nodes' HTTP API, each request
// to a random node.
func benchDura(ctx context.Context, env *cliEnv, c benchConfig, clis []*rpc.Client, pick func(int64, *rand.Rand) string) (benchResult, error) {
	op := func(i int64, rnd *rand.Rand) error {
		cli := clis[rnd.IntN(len(clis))]
		resp, err := cli.Call(ctx, http.MethodPost, "counter", pick(i, rnd), "/increment", nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	// A short warm-up opens connections (and, for counter, the objects).
	warm := c
	warm.duration = min(c.duration/5, time.Second)
	warm.progress = false
	if c.scenario == "counter" {
		load(ctx, env, warm, "warm-up", 0, op)
	}
	r := load(ctx, env, c, "dura", 0, op)
	if r.ops == 0 {
		return r, errors.New("no request succeeded")
	}
	return r, nil
}

// benchRaw runs the same transactions straight against go-sqlite3 files
// with Dura's pragmas: one connection per file, one writer at a time per
// file, like Dura's objects.
func benchRaw(ctx context.Context, env *cliEnv, c benchConfig, cold bool) (benchResult, error) {
	dir, err := os.MkdirTemp("", "dura-bench-raw-")
	if err != nil {
		return benchResult{}, err
	}
	defer os.RemoveAll(dir)
	const dsn = "?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_busy_timeout=5000"
	const schema = `CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
		CREATE INDEX IF NOT EXISTS idx_counters_updated ON counters(updated_at DESC)`
	const incr = `INSERT INTO counters (name, value, updated_at) VALUES ('default', 1, ?)
		ON CONFLICT(name) DO UPDATE SET value = value + 1, updated_at = excluded.updated_at RETURNING value`
	commit := func(db *sql.DB) error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		var v int64
		if err := tx.QueryRow(incr, time.Now().UnixMilli()).Scan(&v); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	open := func(name string) (*sql.DB, error) {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, name+".db")+dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(schema); err != nil {
			db.Close()
			return nil, err
		}
		return db, nil
	}
	if cold {
		return load(ctx, env, c, "raw sqlite", 0, func(i int64, _ *rand.Rand) error {
			db, err := open("cold-" + strconv.FormatInt(i, 10))
			if err != nil {
				return err
			}
			defer db.Close()
			return commit(db)
		}), nil
	}
	dbs := make([]*sql.DB, c.objects)
	locks := make([]sync.Mutex, c.objects)
	for i := range dbs {
		if dbs[i], err = open(strconv.Itoa(i)); err != nil {
			return benchResult{}, err
		}
		defer dbs[i].Close()
	}
	op := func(_ int64, rnd *rand.Rand) error {
		i := rnd.IntN(c.objects)
		locks[i].Lock()
		defer locks[i].Unlock()
		return commit(dbs[i])
	}
	warm := c
	warm.duration = min(c.duration/5, time.Second)
	warm.progress = false
	load(ctx, env, warm, "warm-up", 0, op)
	return load(ctx, env, c, "raw sqlite", 0, op), nil
}

// benchTouch touches c.objects distinct objects once each while sampling
// the server's resident memory and open files from /metrics.
func benchTouch(ctx context.Context, env *cliEnv, c benchConfig, cli *rpc.Client) (benchResult, error) {
	var peakRSS, peakFDs, fdLimit atomic.Value
	peakRSS.Store(0.0)
	peakFDs.Store(0.0)
	fdLimit.Store(0.0)
	sample := func() {
		m, err := cli.Metrics(ctx)
		if err != nil {
			return
		}
		if v, ok := metricValue(m, "process_resident_memory_bytes"); ok && v > peakRSS.Load().(float64) {
			peakRSS.Store(v)
		}
		if v, ok := metricValue(m, "process_open_fds"); ok && v > peakFDs.Load().(float64) {
			peakFDs.Store(v)
		}
		if v, ok := metricValue(m, "dura_open_files_limit"); ok {
			fdLimit.Store(v)
		}
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	c.duration = 24 * time.Hour // bounded by the object count instead
	r := load(ctx, env, c, "touch", int64(c.objects), func(i int64, _ *rand.Rand) error {
		resp, err := cli.Call(ctx, http.MethodPost, "counter", c.prefix+"t-"+strconv.FormatInt(i, 10), "/increment", nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	})
	close(stop)
	<-sampled
	sample()
	r.peakRSS, r.peakFDs, r.fdLimit = peakRSS.Load().(float64), peakFDs.Load().(float64), fdLimit.Load().(float64)
	return r, nil
}

// metricValue reads an unlabelled sample from Prometheus text.
func metricValue(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func printBench(w io.Writer, rs []benchResult) {
	fmt.Fprintf(w, "\n%-12s %10s %10s %12s %12s %12s %8s\n", "run", "ops", "ops/s", "p50", "p95", "p99", "errors")
	for _, r := range rs {
		fmt.Fprintf(w, "%-12s %10d %10.0f %12s %12s %12s %8d\n", r.label, r.ops, r.rate(), ms(r.pct(50)), ms(r.pct(95)), ms(r.pct(99)), r.errors)
	}
	if len(rs) == 2 {
		d, raw := rs[0], rs[1]
		fmt.Fprintf(w, "\n%[1]s / %[2]s throughput: %.2[3]f   p50 %[1]s - %[2]s: %+.3[4]f ms   p50 %[1]s / %[2]s: %.2[5]f\n",
			d.label, raw.label, d.rate()/raw.rate(), float64((d.pct(50)-raw.pct(50)).Microseconds())/1000, float64(d.pct(50))/float64(raw.pct(50)))
	}
	for _, r := range rs {
		if r.peakRSS > 0 {
			fmt.Fprintf(w, "\nserver peak RSS: %.1f MiB   peak open files: %.0f   open-files cap: %.0f (cap + 64 = %.0f)\n",
				r.peakRSS/(1<<20), r.peakFDs, r.fdLimit, r.fdLimit+64)
		}
	}
}

// benchForward measures one object from one client through a node that
// forwards to its owner, then through the owner itself.
func benchForward(ctx context.Context, env *cliEnv, c benchConfig, clis []*rpc.Client) ([]benchResult, error) {
	if len(clis) < 2 {
		return nil, usageErr("--scenario forward needs two or more --addr (the nodes of one cluster)")
	}
	name := c.prefix + "forward"
	resp, err := clis[0].Call(ctx, http.MethodPost, "counter", name, "/increment", nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	owner := resp.Header.Get(rpc.HeaderNode)
	var via, direct *rpc.Client
	for _, cl := range clis {
		info, err := cl.Cluster(ctx)
		if err != nil {
			return nil, err
		}
		if info.Node == owner {
			direct = cl
		} else if via == nil {
			via = cl
		}
	}
	if direct == nil || via == nil {
		return nil, fmt.Errorf("need the owner (%s) and another node among --addr", owner)
	}
	fmt.Fprintf(env.stdout, "object counter/%s, owner %s; one client, %s per run\n", name, owner, c.duration)
	one := c
	one.clients = 1
	var out []benchResult
	for _, run := range []struct {
		label string
		cli   *rpc.Client
	}{{"via other", via}, {"via owner", direct}} {
		r := load(ctx, env, one, run.label, 0, func(int64, *rand.Rand) error {
			resp, err := run.cli.Call(ctx, http.MethodPost, "counter", name, "/increment", nil)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		})
		out = append(out, r)
	}
	return out, nil
}
