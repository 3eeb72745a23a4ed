package clustertest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/rpc"
)

// TestHandoffBenchmark moves a partition holding 100 objects of 1 MB to a
// joining node and reports the transfer rate and the longest time any
// object was unavailable. It is a benchmark, so it only runs with
// DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run HandoffBenchmark -v ./internal/clustertest
func TestHandoffBenchmark(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	// A partition the fourth node will take: the ring is deterministic.
	ring := placement.DefaultRingConfig()
	before, _ := placement.Assign([]string{"n1", "n2", "n3"}, ring)
	after, _ := placement.Assign([]string{"n1", "n2", "n3", "n4"}, ring)
	p := -1
	for i := range after {
		if after[i] == "n4" && before[i] != "n4" {
			p = i
			break
		}
	}
	var names []string
	for i := 0; len(names) < 100; i++ {
		name := fmt.Sprint("big", i)
		if placement.PartitionOf(placement.ObjectID("db", name), ring.Partitions) == p {
			names = append(names, name)
		}
	}
	ctx := context.Background()
	for _, name := range names {
		if _, err := c.Nodes[0].Client.SQL(ctx, "db", name,
			rpc.Statement{SQL: "CREATE TABLE b (v BLOB)"},
			rpc.Statement{SQL: "INSERT INTO b VALUES (randomblob(1000000))"}); err != nil {
			t.Fatal(err)
		}
	}
	// Probe every object continuously; record its longest outage.
	var mu sync.Mutex
	longest := time.Duration(0)
	var convergedAt atomic.Int64 // UnixNano once the join converged
	var seenAfter sync.Map       // objects served since then
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lastOK := map[string]time.Time{}
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				name := names[i%len(names)]
				_, err := c.Nodes[0].Client.SQL(ctx, "db", name, rpc.Statement{SQL: "SELECT length(v) FROM b"})
				now := time.Now()
				if err == nil {
					if at := convergedAt.Load(); at != 0 && now.UnixNano() > at {
						seenAfter.Store(name, true)
					}
					if last, ok := lastOK[name]; ok {
						mu.Lock()
						longest = max(longest, now.Sub(last))
						mu.Unlock()
					}
					lastOK[name] = now
				}
			}
		}(w)
	}
	start := time.Now()
	n4 := c.Join()
	var moved time.Duration
	// Every 5 ms: the time it took is the measurement.
	testutil.PollEvery(t, 5*time.Minute, 5*time.Millisecond, fmt.Sprintf("partition %d ready on n4", p), func() string {
		st := c.Nodes[n4].Cluster.State()
		if len(st.Partitions) <= p || st.Partitions[p].Owner != "n4" || !st.Partitions[p].Ready() {
			return "not moved"
		}
		moved = time.Since(start)
		return ""
	})
	c.WaitConverged(5 * time.Minute)
	all := time.Since(start)
	convergedAt.Store(time.Now().UnixNano())
	testutil.Poll(t, 30*time.Second, "the probes reach every object after the join", func() string {
		n := 0
		seenAfter.Range(func(any, any) bool { n++; return true })
		if n < len(names) {
			return fmt.Sprintf("%d of %d served since", n, len(names))
		}
		return ""
	})
	close(stop)
	wg.Wait()
	t.Logf("partition %d (100 objects x 1 MB) moved in %s: %.1f MB/s (join until the partition was ready on n4, other partitions moving at once)",
		p, moved.Round(time.Millisecond), 100/moved.Seconds())
	t.Logf("whole join converged in %s; longest time any of the 100 objects was unavailable: %s", all.Round(time.Millisecond), longest.Round(time.Millisecond))
}
