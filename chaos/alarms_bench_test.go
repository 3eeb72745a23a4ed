package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// TestAlarmLagProcesses measures alarm firing on a cluster of three real
// dura processes (loopback): 10 000 reminders due within the same 10 s,
// each delivered to a webhook here; the lag is the alarm run's start
// minus its time. Only with DURA_BENCH=1; DURA_BENCH_SERVE_ARGS adds
// flags to every node (e.g. "--max-open-files 12000"):
//
//	DURA_BENCH=1 go test -run AlarmLagProcesses -v -timeout 30m ./chaos
func TestAlarmLagProcesses(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const total = 10000
	ctx := context.Background()
	c, err := StartCluster(ctx, ClusterOptions{Nodes: 3, Bin: buildDura(t), Dir: t.TempDir(),
		Secret: "bench-cluster-secret-0123", Token: "bench-admin-token", Extra: strings.Fields(os.Getenv("DURA_BENCH_SERVE_ARGS")),
		DebugPorts: debugPorts()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hook, err := startWebhook("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()

	due := time.Now().Add(120 * time.Second) // time to set them all on a slow disk
	var next atomic.Int64
	var wg sync.WaitGroup
	setStart := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				at := due.Add(time.Duration(i) * 10 * time.Second / total).UnixMilli()
				body, _ := json.Marshal(map[string]any{"at": at, "url": hook.url})
				for try := 0; ; try++ {
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := c.do(rctx, int(i)%3, "PUT", "/objects"+rpc.ObjectPath("reminders", fmt.Sprint("lag-", i))+"/", body, nil)
					cancel()
					if err == nil {
						break
					}
					if try == 20 {
						t.Errorf("set lag-%d: %v", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	setTook := time.Since(setStart)
	t.Logf("set %d reminders in %s (%.0f/s)", total, setTook.Round(time.Millisecond), total/setTook.Seconds())
	if time.Now().After(due) {
		t.Fatalf("setting took past the due time")
	}
	if leader, err := c.Leader(ctx); err == nil {
		t.Logf("Raft leader: %s", c.Nodes[leader].Name)
	}
	first := map[string]delivery{}
	testutil.PollEvery(t, time.Until(due.Add(10*time.Minute+10*time.Second)), 200*time.Millisecond, "every reminder delivered", func() string {
		for _, d := range hook.deliveries() {
			if _, ok := first[d.Object]; !ok {
				first[d.Object] = d
			}
		}
		if len(first) < total {
			return fmt.Sprintf("only %d of %d delivered", len(first), total)
		}
		return ""
	})
	var lags []time.Duration
	lo, hi := int64(1<<62), int64(0)
	for _, d := range first {
		lags = append(lags, time.Duration(d.Started-d.At)*time.Millisecond)
		lo, hi = min(lo, d.Started), max(hi, d.Started)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	byNode := map[string][]time.Duration{}
	for _, d := range first {
		byNode[d.Node] = append(byNode[d.Node], time.Duration(d.Started-d.At)*time.Millisecond)
	}
	for node, ls := range byNode {
		sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
		t.Logf("  on %s: %d alarms, p50 %s, p99 %s", node, len(ls), ls[len(ls)/2], ls[len(ls)*99/100])
	}
	t.Logf("firing lag over %d alarms (3 processes, args %q): p50 %s, p99 %s, max %s; fired %.0f/s (first to last run)",
		total, os.Getenv("DURA_BENCH_SERVE_ARGS"), lags[total/2], lags[total*99/100], lags[total-1], float64(total)/(float64(hi-lo)/1000))
}

// debugPorts is the first pprof port of the nodes (6061) when
// DURA_BENCH_PPROF is set, else 0 (none).
func debugPorts() int {
	if os.Getenv("DURA_BENCH_PPROF") != "" {
		return 6061
	}
	return 0
}
