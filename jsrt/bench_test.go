package jsrt_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/jsrt"
	"github.com/dura-dev/dura/node"
)

// The figures of the README's JavaScript section, behind an env gate
// (they load both cores for about half a minute):
//
//	DURA_JS_BENCH=1 go test ./jsrt -run TestJSFigures -v
//
// DURA_JS_BENCH_ROUNDS and DURA_JS_BENCH_ROUND set the throughput rounds
// (default 3) and the length of each class's share of one (default 3s).
// DURA_JS_BENCH_OBJECTS sets how many objects the memory figure keeps
// live (default 2000; 0 skips it); the figure is per object. The node
// keeps its default --max-open-files (3072: 1 024 databases open, the
// other objects parked: live, their databases closed) unless
// DURA_JS_BENCH_OPEN_FILES sets it (3 files per open object: 10 000
// objects all open need a process limit above 30 000). --max-objects is
// raised above both classes' objects, so none is evicted.
// DURA_JS_BENCH_RELEASE_AFTER sets the node's --release-after (default
// 10s; 0 turns releases off, and the figure after them is skipped).
func TestJSFigures(t *testing.T) {
	if os.Getenv("DURA_JS_BENCH") == "" {
		t.Skip("set DURA_JS_BENCH=1 to measure")
	}
	var err error
	active := 2000
	if v := os.Getenv("DURA_JS_BENCH_OBJECTS"); v != "" {
		active, _ = strconv.Atoi(v)
	}
	releaseAfter := node.DefaultConfig("").ReleaseAfter
	if v := os.Getenv("DURA_JS_BENCH_RELEASE_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		releaseAfter = d
	}
	openFiles := node.DefaultConfig("").MaxOpenFiles
	if v := os.Getenv("DURA_JS_BENCH_OPEN_FILES"); v != "" {
		if openFiles, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	n := startJS(t, nodeOpts{config: func(c *node.Config) {
		c.MaxOpenFiles = openFiles
		c.MaxObjects = 2*active + 1000
		c.ReleaseAfter = releaseAfter
	}})
	src, err := os.ReadFile("../examples/ts/counter.ts")
	if err != nil {
		t.Fatal(err)
	}
	n.deploy("counter", string(src))
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	// Throughput: both classes in the same run, same load, after one
	// request to each object (cold starts are measured below).
	for i := range 64 {
		for _, f := range []string{"%s/objects/counter/g%d/increment", "%s/objects/Counter/j%d/increment"} {
			resp, err := hc.Post(fmt.Sprintf(f, n.url, i), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	rounds, each := 3, 3*time.Second
	if v := os.Getenv("DURA_JS_BENCH_ROUNDS"); v != "" {
		if rounds, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	if v := os.Getenv("DURA_JS_BENCH_ROUND"); v != "" {
		if each, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	for round := range rounds {
		goRate := load(t, hc, n.url+"/objects/counter/g%d/increment", 64, 16, each)
		jsRate := load(t, hc, n.url+"/objects/Counter/j%d/increment", 64, 16, each)
		t.Logf("round %d: counter upsert, 64 objects x 16 clients: Go %.0f/s, JavaScript %.0f/s (%.2fx)", round+1, goRate, jsRate, jsRate/goRate)
	}

	// Cold start: the first request of a new object (activation: open the
	// file, run the constructor), one at a time.
	goCold := cold(t, hc, n.url+"/objects/counter/cold-g%d/increment", 300)
	jsCold := cold(t, hc, n.url+"/objects/Counter/cold-j%d/increment", 300)
	t.Logf("cold start, median of 300: Go %v, JavaScript %v", goCold, jsCold)

	// Memory of many active objects, JavaScript first (the target's
	// figure), then Go: each just after its activations, and again once
	// every one of them has been idle past --release-after and given back
	// its SQLite caches (they stay active: in memory, open, state kept).
	if active == 0 {
		return
	}
	classes := []string{"Counter", "counter"}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < uint64(min(2*node.FilesPerObject*active, openFiles)+600) {
		// With too few files for both classes' open objects, only the
		// JavaScript figure (the target's) is taken.
		t.Logf("open-file limit %d is too low for %d objects of each class: JavaScript only", lim.Cur, active)
		classes = classes[:1]
	}
	for _, class := range classes {
		before, rssBefore := heapMB(), rssMB()
		releasedBefore := metric(t, hc, n.url, "dura_idle_releases_total")
		liveBefore, evictedBefore := metric(t, hc, n.url, "dura_active_objects"), metric(t, hc, n.url, "dura_evictions_total")
		for i := range active {
			resp, err := hc.Post(fmt.Sprintf("%s/objects/%s/mem%d/increment", n.url, class, i), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		if live, ev := metric(t, hc, n.url, "dura_active_objects")-liveBefore, metric(t, hc, n.url, "dura_evictions_total")-evictedBefore; live != float64(active) || ev != 0 {
			t.Fatalf("%d objects activated: %v more live, %v evicted", active, live, ev)
		}
		t.Logf("%d %s objects live: %v databases open, %v parked so far", active, class,
			metric(t, hc, n.url, "dura_open_databases"), metric(t, hc, n.url, "dura_parks_total"))
		report := func(when string) {
			after, rssAfter := heapMB(), rssMB()
			t.Logf("%d more active %s objects, %s: Go heap +%.0f MiB (%.1f KiB each), process RSS +%.0f MiB (%.1f KiB each; 10 000 would take ~%.0f MiB), %.0f MiB in all",
				active, class, when, after-before, (after-before)*1024/float64(active), rssAfter-rssBefore, (rssAfter-rssBefore)*1024/float64(active),
				(rssAfter-rssBefore)*10000/float64(active), rssAfter)
		}
		report("just activated")
		if releaseAfter == 0 {
			continue
		}
		testutil.PollTrue(t, 2*time.Minute, "every object released", func() bool {
			return metric(t, hc, n.url, "dura_idle_releases_total")-releasedBefore >= float64(active)
		})
		report("all idle past --release-after")
	}
}

// metric reads one unlabelled metric of the node's /metrics.
func metric(t *testing.T, hc *http.Client, url, name string) float64 {
	t.Helper()
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// load sends POSTs to format (with %d an object number) from clients
// goroutines for d and returns the rate of 200 answers.
func load(t *testing.T, hc *http.Client, format string, objects, clients int, d time.Duration) float64 {
	t.Helper()
	var ok, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := hc.Post(fmt.Sprintf(format, rand.IntN(objects)), "", nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%s: %d requests failed", format, failed.Load())
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

// cold is the median latency of the first request to count new objects.
func cold(t *testing.T, hc *http.Client, format string, count int) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := range count {
		start := time.Now()
		resp, err := hc.Post(fmt.Sprintf(format, i), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkCounterIncrement is one increment event of the guide's
// Counter (examples/ts/counter.ts) without HTTP; compare with
// examples.BenchmarkCounterIncrement, the Go class.
func BenchmarkCounterIncrement(b *testing.B) {
	src, err := os.ReadFile("../examples/ts/counter.ts")
	if err != nil {
		b.Fatal(err)
	}
	cfg := node.DefaultConfig(b.TempDir())
	rt, err := node.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h, err := jsrt.New(jsrt.Config{Runtime: rt})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	if _, err := h.Deploy(ctx, "counter", src, false); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/increment?by=1", nil)
		if err := rt.Call(ctx, "Counter", "bench", w, r); err != nil {
			b.Fatal(err)
		}
	}
}
