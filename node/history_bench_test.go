package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"

	"github.com/dura-dev/dura/rpc"
)

// TestPITRDiskCost runs the counter's write (one UPDATE per event) over
// 1 000 objects from 16 clients, with the history off and on, side by
// side, and reports events/s of each and the history's bytes per event,
// extrapolated to a day at 1 000 events/s. Only with DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run PITRDiskCost -v -timeout 30m ./node
func TestPITRDiskCost(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const objects, events, clients = 1000, 100_000, 16
	ctx := context.Background()
	for _, retention := range []time.Duration{0, 720 * time.Hour, 0, 720 * time.Hour} {
		dir := t.TempDir()
		rt := newTestRuntime(t, dir, func(c *Config) { c.PITRRetention = retention }, nil)
		for i := range objects {
			if _, err := rt.SQL(ctx, "db", fmt.Sprint("c", i), []rpc.Statement{{SQL: "CREATE TABLE c (v INTEGER); INSERT INTO c VALUES (0)"}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := rt.archivePass(true); err != nil {
			t.Fatal(err)
		}
		before := fsutil.DirBytes(filepath.Join(dir, "history"))
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= events {
						return
					}
					if _, err := rt.SQL(ctx, "db", fmt.Sprint("c", i%objects), []rpc.Statement{{SQL: "UPDATE c SET v = v + 1"}}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		if err := rt.archivePass(true); err != nil {
			t.Fatal(err)
		}
		perEvent := float64(fsutil.DirBytes(filepath.Join(dir, "history"))-before) / events
		t.Logf("history %-9s %6.0f events/s; history %.0f bytes per event = %.1f GB per day at 1 000 events/s",
			retention, events/took.Seconds(), perEvent, perEvent*86_400_000/1e9)
		rt.Close(ctx)
	}
}
