package clustertest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

// TestAlarmBenchmark sets 10 000 alarms due within the same 10 s on a
// 3-node cluster and reports the firing lag (run start - scheduled time)
// p50/p99, alarms fired per second, the cost of SetAlarm inside an event,
// and the schedule's memory per alarm. Only with DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run AlarmBenchmark -v -timeout 30m ./internal/clustertest
func TestAlarmBenchmark(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const total = 10000
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	ctx := context.Background()

	// SetAlarm inside an event against the same event without it: the
	// tick class's /arm sets the alarm, /fail?n=0 writes a KV entry.
	measure := func(path func(i int) string) time.Duration {
		start := time.Now()
		for i := 0; i < 200; i++ {
			resp, err := c.Nodes[i%3].Client.Call(ctx, "POST", "tick", fmt.Sprint("cost", i), path(i), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		return time.Since(start) / 200
	}
	far := time.Now().Add(24 * time.Hour).UnixMilli()
	measure(func(int) string { return "/fail?n=0" }) // activate the objects first
	without := measure(func(int) string { return "/fail?n=0" })
	with := measure(func(int) string { return fmt.Sprint("/arm?at=", far) })
	t.Logf("event without SetAlarm: %s; with SetAlarm (committed through Raft first): %s (%.1fx)", without, with, float64(with)/float64(without))
	measure(func(int) string { return "/disarm" }) // clear them: only the lag alarms stay armed

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// 10 000 alarms, due evenly within 10 s starting 90 s from now (time
	// to set them all), set by 16 clients through the three nodes.
	due := time.Now().Add(90 * time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	setStart := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				at := due.Add(time.Duration(i) * 10 * time.Second / total)
				resp, err := c.Nodes[int(i)%3].Client.Call(ctx, "POST", "tick", fmt.Sprint("lag", i), fmt.Sprint("/arm?at=", at.UnixMilli()), nil)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}(w)
	}
	wg.Wait()
	setTook := time.Since(setStart)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("set %d alarms in %s (%.0f/s); heap grew %.1f MiB over 3 in-process nodes = %.0f bytes per alarm per node (schedule, timers, objects)",
		total, setTook.Round(time.Millisecond), total/setTook.Seconds(), float64(after.HeapAlloc-before.HeapAlloc)/(1<<20),
		float64(after.HeapAlloc-before.HeapAlloc)/total/3)
	if time.Now().After(due) {
		t.Fatalf("setting the alarms took past their due time (%s)", setTook)
	}
	// Wait until every alarm ran, then collect lags.
	testutil.PollEvery(t, 5*time.Minute, 100*time.Millisecond, "every alarm ran, 10 s past the due time", func() string {
		left := 0
		for _, nd := range c.Up() {
			left += nd.RT.PendingAlarms()
		}
		if left != 0 {
			return fmt.Sprintf("%d alarms still pending", left)
		}
		if wait := time.Until(due.Add(10 * time.Second)); wait > 0 {
			return fmt.Sprintf("%s before due + 10 s", wait.Round(time.Millisecond))
		}
		return ""
	})
	var lags []time.Duration
	first, last := int64(1<<62), int64(0)
	for i := 0; i < total; i++ {
		var rs []run
		testutil.Poll(t, 5*time.Second, fmt.Sprint("lag", i, "'s run recorded"), func() string {
			var err error
			if rs, err = runs(t, c, fmt.Sprint("lag", i)); err != nil || len(rs) == 0 {
				return fmt.Sprintf("%v %v", rs, err)
			}
			return ""
		})
		lags = append(lags, time.Duration(rs[0].at-rs[0].scheduled)*time.Millisecond)
		first, last = min(first, rs[0].at), max(last, rs[0].at)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("firing lag over %d alarms: p50 %s, p99 %s, max %s; fired %.0f/s (first to last run)",
		total, lags[total/2], lags[total*99/100], lags[total-1], float64(total)/(float64(last-first)/1000))
}
