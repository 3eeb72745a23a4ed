package replication

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/placement"
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
		n, err := NewRaftNode(RaftConfig{NodeID: id, Bind: bind, Dir: filepath.Join(dir, id), Assign: roundRobin, Timing: LoopbackTiming()})
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
	testutil.PollTrue(t, 10*time.Second, "a leads", a.IsLeader)
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
	testutil.PollTrue(t, time.Minute, "c has every alarm", func() bool { return c.AlarmCount() == total })
	// Let the snapshot threshold be checked (every 2 s in fast mode).
	testutil.PollTrue(t, time.Minute, "c took a snapshot", func() bool {
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
	testutil.PollTrue(t, 5*time.Minute, "restarted c has every alarm", func() bool { return c2.AlarmCount() == total })
	t.Logf("restarted c had all %d alarms back %s after Open", total, time.Since(restart).Round(time.Millisecond))
}

// TestStateScale reports the size of the Raft state (members and
// placement) at 271 to 65 521 partitions, and with the alarm schedule
// (DURA_BENCH_ALARMS alarms, 10 000 000 by default) how large its
// snapshot is and how long taking and restoring it take. Only with
// DURA_BENCH=1 (10 M alarms need about 12 GB of memory):
//
//	DURA_BENCH=1 go test -run StateScale -v -timeout 30m ./replication
func TestStateScale(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	alarms := 10_000_000
	if v := os.Getenv("DURA_BENCH_ALARMS"); v != "" {
		fmt.Sscan(v, &alarms)
	}
	state := func(partitions, members int) *ClusterState {
		s := &ClusterState{Ring: placement.RingConfig{Partitions: partitions, ReplicationFactor: 20, Load: 1.25}, Epoch: 1000, Members: map[string]*Member{}}
		for i := 0; i < members; i++ {
			n := fmt.Sprintf("node-%04d", i)
			s.Members[n] = &Member{Name: n, HTTP: n + ".dura.internal:8080", Raft: n + ".dura.internal:7947", Gossip: n + ".dura.internal:7946", Status: Active, Incarnation: fmt.Sprintf("%032x", i)}
		}
		s.Partitions = make([]Partition, partitions)
		for p := range s.Partitions {
			s.Partitions[p].Owner = fmt.Sprintf("node-%04d", p%members)
		}
		return s
	}
	for _, p := range []int{271, 4093, 65521} {
		for _, m := range []int{3, 1000} {
			if m > p {
				continue
			}
			s := state(p, m)
			b, _ := json.Marshal(s)
			start := time.Now()
			s.Clone()
			t.Logf("cluster state, %d partitions, %d members: %d KiB (copied per member change or handoff in %s)", p, m, len(b)>>10, time.Since(start).Round(10*time.Microsecond))
		}
	}
	dir := t.TempDir()
	f := &clusterFSM{state: state(65521, 1000), alarms: make(map[string]Alarm, alarms)}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < alarms; i++ {
		id := fmt.Sprintf("%064x", i)
		f.alarms[id] = Alarm{ObjectID: id, Class: "tick", Name: fmt.Sprint("o", i), Partition: i % 65521, At: at.Add(time.Duration(i) * time.Millisecond), Scheduled: at}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d alarms in memory: heap %.1f GiB", alarms, float64(ms.HeapAlloc)/(1<<30))
	start := time.Now()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.bin")
	sink := &fileSink{path: path}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	t.Logf("snapshot of 65 521 partitions, 1 000 members and %d alarms: %.2f GiB, taken and written in %s", alarms, float64(st.Size())/(1<<30), time.Since(start).Round(time.Millisecond))
	snap.Release()
	f = nil
	snap = nil
	runtime.GC()
	rc, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	g := &clusterFSM{state: &ClusterState{}}
	start = time.Now()
	if err := g.Restore(rc); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("restored in %s (%d alarms, %d partitions); heap after %.1f GiB, peak heap in use (sys) %.1f GiB", took.Round(time.Millisecond), len(g.alarms), len(g.state.Partitions), float64(ms.HeapAlloc)/(1<<30), float64(ms.Sys)/(1<<30))
}

// fileSink is a raft.SnapshotSink writing to one file.
type fileSink struct {
	path string
	f    *os.File
}

func (s *fileSink) Write(b []byte) (int, error) {
	if s.f == nil {
		f, err := os.Create(s.path)
		if err != nil {
			return 0, err
		}
		s.f = f
	}
	return s.f.Write(b)
}
func (s *fileSink) Close() error  { return s.f.Close() }
func (s *fileSink) ID() string    { return "bench" }
func (s *fileSink) Cancel() error { return s.f.Close() }
