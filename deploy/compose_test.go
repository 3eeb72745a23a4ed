package deploy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

// TestComposeCluster runs deploy/docker-compose.yml for real: three
// containers of the FROM scratch image, a crash of the Raft leader, and
// a rolling restart onto a rebuilt image under write load. It needs
// Docker and a compose tool, takes a few minutes, and so runs only with
// DURA_COMPOSE_TEST=1 (.ci/run sets it where "docker info" works).
func TestComposeCluster(t *testing.T) {
	if os.Getenv("DURA_COMPOSE_TEST") != "1" {
		t.Skip("set DURA_COMPOSE_TEST=1 to run the three-node compose cluster (needs Docker)")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Fatalf("DURA_COMPOSE_TEST=1 but docker info fails: %v", err)
	}
	began := time.Now()
	c := newComposeCluster(t)
	all := []int{0, 1, 2}

	phase := time.Now()
	img1 := c.buildImage("compose-test-1")
	t.Logf("image %s built in %s", img1, time.Since(phase).Round(time.Second))

	phase = time.Now()
	c.run("up", "-d")
	c.waitSettled(all, 3*time.Minute)
	t.Logf("phase up: %s", time.Since(phase).Round(time.Second))

	// 1. Writes through each node, reads through the two others; the node
	// that executed a write (X-Dura-Node) is the owner /v1/objects names.
	phase = time.Now()
	w := newWrites()
	owners := map[string]string{} // object name -> owning node
	var objects []string
	for k := 0; k < 300 && (k < 24 || !eachOwns(owners, c.names, 2)); k++ {
		name := fmt.Sprintf("obj-%d", k)
		via := k % 3
		for range 3 { // 1, 2, 3: each answer must be exactly the next value
			if a := w.increment(c, via, name); a.status != 200 {
				t.Fatalf("increment %s through %s: %s", name, c.names[via], a)
			}
		}
		var info struct{ Owner string }
		if err := c.do((via+1)%3, "GET", "/v1/objects/counter/"+name, nil).decode(&info); err != nil {
			t.Fatalf("object info %s: %v", name, err)
		}
		if last := w.lastNode(name); last != info.Owner {
			t.Fatalf("%s: executed on %s, but its owner is %s", name, last, info.Owner)
		}
		owners[name] = info.Owner
		objects = append(objects, name)
		for _, j := range others(via) {
			w.read(c, j, name)
		}
	}
	if !eachOwns(owners, c.names, 2) {
		t.Fatalf("after %d objects some node owns fewer than 2: %v", len(objects), owners)
	}
	notes := writeNotes(t, c)
	w.failIfViolated(t, c.logDir)
	t.Logf("phase writes: %d objects through every node, read through the others, in %s", len(objects), time.Since(phase).Round(time.Second))

	// 2. Kill the Raft leader (SIGKILL: no handoff). Objects on the two
	// others keep working, executed by their owners; the victim's objects
	// fail over to an in-sync replica on a survivor and answer again with
	// every acknowledged increment (three copies of every partition by
	// default).
	phase = time.Now()
	var info clusterInfo
	if err := c.do(0, "GET", "/v1/cluster", nil).decode(&info); err != nil {
		t.Fatal(err)
	}
	victim := indexOf(c.names, info.Leader)
	if victim < 0 {
		t.Fatalf("leader %q is not one of %v", info.Leader, c.names)
	}
	survivors := others(victim)
	c.saveLogs(victim, "before-kill")
	c.run("kill", "-s", "SIGKILL", c.names[victim])
	killed := time.Now()
	testutil.PollEvery(t, time.Minute, pollEvery, c.names[victim]+" down", func() string {
		if a := c.do(victim, "GET", "/healthz", nil); a.err == nil {
			return "still answers: " + a.String()
		}
		return ""
	})
	served, failedOver := 0, 0
	var slowest time.Duration
	for k, name := range objects {
		via, owner := survivors[k%2], owners[name]
		// Until the survivors elect a leader (and, for the victim's
		// objects, promote a replica), fencing may refuse.
		testutil.PollEvery(t, time.Minute, pollEvery, name+" served while "+c.names[victim]+" is down", func() string {
			a := w.increment(c, via, name)
			switch {
			case a.status != 200:
				return a.String()
			case owner != c.names[victim] && a.node != owner:
				return fmt.Sprintf("executed on %s, owner is %s", a.node, owner)
			case a.node == c.names[victim]:
				return "executed on the killed node"
			}
			return ""
		})
		if owner == c.names[victim] {
			failedOver++
			slowest = max(slowest, time.Since(killed))
		} else {
			served++
		}
	}
	if failedOver == 0 {
		t.Fatalf("none of the objects was on the killed %s", c.names[victim])
	}
	t.Logf("%d objects of the others served, %d of %s failed over (the last answered %s after the kill)", served, failedOver, c.names[victim], slowest.Round(100*time.Millisecond))
	w.failIfViolated(t, c.logDir)
	t.Logf("phase kill %s (the leader): %s", c.names[victim], time.Since(phase).Round(time.Second))

	// 3. Start it again: every acknowledged write is there, read through
	// every node.
	phase = time.Now()
	c.run("start", c.names[victim])
	c.waitSettled(all, 3*time.Minute)
	for k, name := range objects {
		w.read(c, k%3, name)
	}
	readNotes(t, c, notes)
	w.failIfViolated(t, c.logDir)
	t.Logf("phase restart %s: %s", c.names[victim], time.Since(phase).Round(time.Second))

	// 4. A rolling restart onto a newer image (same binary, new dura.build
	// label: compose re-creates each container; data stays in its
	// volume), one node at a time, under steady writes through random
	// nodes. No acknowledged write may be lost.
	phase = time.Now()
	img2 := c.buildImage("compose-test-2")
	if img2 == img1 {
		t.Fatalf("rebuilt image has the same ID %s", img2)
	}
	w.resetStats()
	load := startLoad(c, w, 6, 4)
	testutil.PollEvery(t, time.Minute, pollEvery, "load running", func() string {
		if n := w.ackCount(); n < 50 {
			return fmt.Sprintf("%d writes acknowledged", n)
		}
		return ""
	})
	for _, i := range all {
		step := time.Now()
		before := w.ackCount()
		// Stop first (SIGTERM: the node hands its partitions off) so its
		// whole log is kept, then compose re-creates it on the new image.
		c.run("stop", "-t", "40", c.names[i])
		c.saveLogs(i, "stopped-for-upgrade")
		c.run("up", "-d", "--no-deps", c.names[i])
		if got := c.containerImage(i); got != img2 {
			t.Fatalf("%s runs image %s after up, want %s", c.names[i], got, img2)
		}
		c.waitSettled(all, 3*time.Minute)
		testutil.PollEvery(t, time.Minute, pollEvery, "writes continue", func() string {
			if n := w.ackCount(); n < before+50 {
				return fmt.Sprintf("%d writes acknowledged since the restart began", n-before)
			}
			return ""
		})
		t.Logf("restarted %s onto the new image in %s", c.names[i], time.Since(step).Round(100*time.Millisecond))
	}
	load.stop()
	c.waitSettled(all, 3*time.Minute)
	for k, name := range append(objects, load.objects...) {
		w.read(c, k%3, name)
	}
	readNotes(t, c, notes)
	w.failIfViolated(t, c.logDir)
	t.Logf("phase rolling restart: %s; writes under load: %s; none lost", time.Since(phase).Round(time.Second), w.stats())

	// Docker's own health checks (dura health --ready in the container)
	// agree.
	testutil.PollEvery(t, 2*time.Minute, pollEvery, "containers healthy", func() string {
		for _, i := range all {
			if h := c.health(i); h != "healthy" {
				return fmt.Sprintf("%s is %q", c.names[i], h)
			}
		}
		return ""
	})

	c.run("down", "-v", "-t", "30")
	out, err := exec.Command("docker", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+c.project).Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("volumes left after down -v: %v %s", err, out)
	}
	t.Logf("compose test done in %s", time.Since(began).Round(time.Second))
}

// writes tracks every increment sent to a counter object: known is the
// value the last acknowledged answer or read gave, pending the attempts
// since that got no acknowledgement (they may or may not have applied).
// A later value must be above known (no acknowledged write lost) and at
// most known+pending(+1 for a write) (no write from nowhere). Each object
// has one writer at a time. Safe for concurrent use.
type writes struct {
	mu         sync.Mutex
	objs       map[string]*tally
	acks       int            // acknowledged writes since resetStats
	fails      map[string]int // unacknowledged ones, by what came back
	maxGap     time.Duration  // longest an object went without an acknowledged write
	gapObj     string
	violations []string
}

type tally struct {
	known, pending int64
	node           string    // X-Dura-Node of the last acknowledged write
	lastAck        time.Time // of the last acknowledged write
	history        []string  // every write sent: when, through, outcome
}

func newWrites() *writes { return &writes{objs: map[string]*tally{}, fails: map[string]int{}} }

// resetStats starts counting acknowledgements, failures and gaps anew.
func (w *writes) resetStats() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.acks, w.fails, w.maxGap, w.gapObj = 0, map[string]int{}, 0, ""
	for _, tl := range w.objs {
		tl.lastAck = time.Time{}
	}
}

// stats says how writes fared since resetStats.
func (w *writes) stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var f []string
	for k, n := range w.fails {
		f = append(f, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(f)
	return fmt.Sprintf("%d acknowledged, not acknowledged: [%s]; longest without an acknowledged write: %s (%s)",
		w.acks, strings.Join(f, ", "), w.maxGap.Round(10*time.Millisecond), w.gapObj)
}

func (w *writes) get(name string) *tally {
	tl := w.objs[name]
	if tl == nil {
		tl = &tally{}
		w.objs[name] = tl
	}
	return tl
}

// increment adds 1 to counter name through node i.
func (w *writes) increment(c *composeCluster, i int, name string) answer {
	sent := time.Now()
	a := c.do(i, "POST", "/objects/counter/"+url.PathEscape(name)+"/increment", nil)
	var v struct{ Value int64 }
	ok := a.err == nil && a.status == 200 && json.Unmarshal(a.body, &v) == nil
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	tl := w.get(name)
	when := fmt.Sprintf("%s+%dms", sent.UTC().Format("15:04:05.000"), now.Sub(sent).Milliseconds())
	if !ok {
		tl.pending++
		what := fmt.Sprintf("%d %s", a.status, a.code)
		if a.err != nil {
			what = "no answer"
		}
		w.fails[what]++
		tl.history = append(tl.history, fmt.Sprintf("%s via %s: %s", when, c.names[i], what))
		return a
	}
	w.acks++
	if !tl.lastAck.IsZero() && now.Sub(tl.lastAck) > w.maxGap {
		w.maxGap, w.gapObj = now.Sub(tl.lastAck), name
	}
	tl.lastAck = now
	tl.history = append(tl.history, fmt.Sprintf("%s via %s: %d on %s", when, c.names[i], v.Value, a.node))
	if v.Value <= tl.known || v.Value > tl.known+tl.pending+1 {
		w.violations = append(w.violations, fmt.Sprintf("%s: increment sent %s through %s, executed on %s, answered %d, expected %d..%d",
			name, when, c.names[i], a.node, v.Value, tl.known+1, tl.known+tl.pending+1))
	}
	tl.known, tl.pending, tl.node = v.Value, 0, a.node
	return a
}

// read checks counter name through node i (retrying refusals while
// leadership or placement settles: reads change nothing).
func (w *writes) read(c *composeCluster, i int, name string) {
	c.t.Helper()
	var v struct{ Value int64 }
	testutil.PollEvery(c.t, time.Minute, pollEvery, "read "+name+" through "+c.names[i], func() string {
		if err := c.do(i, "GET", "/objects/counter/"+url.PathEscape(name), nil).decode(&v); err != nil {
			return err.Error()
		}
		return ""
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	tl := w.get(name)
	if v.Value < tl.known || v.Value > tl.known+tl.pending {
		w.violations = append(w.violations, fmt.Sprintf("%s: read through %s gave %d, expected %d..%d (acknowledged writes lost or invented)", name, c.names[i], v.Value, tl.known, tl.known+tl.pending))
	}
	tl.known, tl.pending = v.Value, 0
}

func (w *writes) lastNode(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.get(name).node
}

func (w *writes) ackCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acks
}

func (w *writes) failIfViolated(t *testing.T, logDir string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) == 0 {
		return
	}
	// Every write sent to the objects concerned goes to the log
	// directory; the last ones to the test's output.
	var all strings.Builder
	for _, name := range keys(w.objs) {
		tl := w.objs[name]
		for _, v := range w.violations {
			if strings.HasPrefix(v, name+":") {
				fmt.Fprintf(&all, "%s:\n  %s\n", name, strings.Join(tl.history, "\n  "))
				t.Logf("%s, the last writes:\n  %s", name, strings.Join(tl.history[max(0, len(tl.history)-20):], "\n  "))
				break
			}
		}
	}
	path := filepath.Join(logDir, "writes.txt")
	os.WriteFile(path, []byte(all.String()), 0o644)
	t.Fatalf("%d violations (every write to these objects: %s):\n%s", len(w.violations), path, strings.Join(w.violations, "\n"))
}

// load is a steady stream of increments: each worker loops over objects
// of its own, through a random node, about 40 requests a second.
type load struct {
	objects []string
	done    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(c *composeCluster, w *writes, workers, perWorker int) *load {
	l := &load{done: make(chan struct{})}
	for k := range workers {
		var mine []string
		for j := range perWorker {
			mine = append(mine, fmt.Sprintf("load-%d-%d", k, j))
		}
		l.objects = append(l.objects, mine...)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(25 * time.Millisecond) // pacing, not waiting
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-l.done:
					return
				case <-tick.C:
				}
				w.increment(c, rand.IntN(len(c.names)), mine[n%len(mine)])
			}
		}()
	}
	return l
}

func (l *load) stop() {
	close(l.done)
	l.wg.Wait()
}

// writeNotes writes a row into a "db" object through each node with the
// admin SQL route; it returns object name -> the text written.
func writeNotes(t *testing.T, c *composeCluster) map[string]string {
	t.Helper()
	notes := map[string]string{}
	for i, node := range c.names {
		name := "notes-" + node
		text := "written through " + node
		body := map[string]any{"statements": []map[string]any{
			{"sql": "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)"},
			{"sql": "INSERT INTO notes (body) VALUES (?)", "params": []any{text}},
		}}
		if a := c.do(i, "POST", "/v1/objects/db/"+name+"/sql", body); a.status != 200 {
			t.Fatalf("sql through %s: %s", node, a)
		}
		notes[name] = text
	}
	readNotes(t, c, notes)
	return notes
}

// readNotes reads every note object through every node.
func readNotes(t *testing.T, c *composeCluster, notes map[string]string) {
	t.Helper()
	for name, text := range notes {
		for i := range c.names {
			var res struct {
				Results []struct{ Rows [][]any } `json:"results"`
			}
			testutil.PollEvery(t, time.Minute, pollEvery, "read "+name+" through "+c.names[i], func() string {
				a := c.do(i, "POST", "/v1/objects/db/"+name+"/sql", map[string]any{"sql": "SELECT body FROM notes ORDER BY id"})
				if err := a.decode(&res); err != nil {
					return err.Error()
				}
				return ""
			})
			if len(res.Results) != 1 || len(res.Results[0].Rows) != 1 || res.Results[0].Rows[0][0] != text {
				t.Fatalf("%s through %s: %+v, want one row %q", name, c.names[i], res, text)
			}
		}
	}
}

// eachOwns reports whether every node owns at least n of the objects.
func eachOwns(owners map[string]string, nodes []string, n int) bool {
	count := map[string]int{}
	for _, o := range owners {
		count[o]++
	}
	for _, node := range nodes {
		if count[node] < n {
			return false
		}
	}
	return true
}

func others(i int) []int {
	var out []int
	for j := range 3 {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}
