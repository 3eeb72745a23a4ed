package replication

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestScheduleScale commits 100 000 alarms on a 3-node Raft group with
// the default snapshot threshold and reports the log and snapshot sizes,
// the memory per alarm and how long a restarted node takes to get the
// whole schedule back. Only with DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run ScheduleScale -v -timeout 30m ./replication
func TestScheduleScale(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const total = 100000
	dir := t.TempDir()
	mk := func(id, bind string) *RaftNode {
		n, err := NewRaftNode(RaftConfig{NodeID: id, Bind: bind, Dir: filepath.Join(dir, id), Assign: roundRobin, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Open(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := mk("a", "127.0.0.1:0")
	a.Bootstrap()
	eventually(t, 10*time.Second, "a leads", a.IsLeader)
	b, c := mk("b", "127.0.0.1:0"), mk("c", "127.0.0.1:0")
	defer a.Close()
	defer b.Close()
	for _, n := range []*RaftNode{b, c} {
		if err := a.AddServer(n.cfg.NodeID, n.Addr(), true); err != nil {
			t.Fatal(err)
		}
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	var wg sync.WaitGroup
	at := time.Now().Add(time.Hour)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += 32 {
				al := Alarm{ObjectID: fmt.Sprintf("%064d", i), Class: "tick", Name: fmt.Sprint("o", i), Partition: i % 271, At: at, Scheduled: at}
				if err := a.Apply(Command{Kind: CmdPutAlarm, Alarm: &al}, 10*time.Second); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	took := time.Since(start)
	eventually(t, time.Minute, "c has every alarm", func() bool { return c.AlarmCount() == total })
	// Let the snapshot threshold be checked (every 2 s in fast mode).
	eventually(t, time.Minute, "c took a snapshot", func() bool {
		snaps, _ := filepath.Glob(filepath.Join(dir, "c", "snapshots", "*", "state.bin"))
		return len(snaps) > 0
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	size := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "c", "snapshots", "*", "state.bin"))
	var snapSize int64
	for _, s := range snaps {
		snapSize += size(s)
	}
	t.Logf("committed %d alarms in %s (%.0f/s); heap +%.1f MiB over 3 in-process replicas = %.0f bytes per alarm per replica",
		total, took.Round(time.Millisecond), total/took.Seconds(), float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), float64(after.HeapAlloc-before.HeapAlloc)/total/3)
	t.Logf("on c: raft.db %.1f MiB, %d snapshot(s) totalling %.1f MiB", float64(size(filepath.Join(dir, "c", "raft.db")))/(1<<20), len(snaps), float64(snapSize)/(1<<20))
	// Restart c: it restores its snapshot and replays the rest of its log.
	cAddr := c.Addr()
	c.Close()
	restart := time.Now()
	c2 := mk("c", cAddr)
	defer c2.Close()
	eventually(t, 5*time.Minute, "restarted c has every alarm", func() bool { return c2.AlarmCount() == total })
	t.Logf("restarted c had all %d alarms back %s after Open", total, time.Since(restart).Round(time.Millisecond))
}
