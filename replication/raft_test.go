package replication

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/placement"
)

func startRaft(t *testing.T, dir, id string, bind ...string) *RaftNode {
	t.Helper()
	addr := "127.0.0.1:0"
	if len(bind) > 0 {
		addr = bind[0]
	}
	n, err := NewRaftNode(RaftConfig{NodeID: id, Bind: addr, Dir: filepath.Join(dir, id), Assign: roundRobin, Timing: LoopbackTiming()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func leaderOf(nodes ...*RaftNode) *RaftNode {
	for _, n := range nodes {
		if n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

func TestRaftReplicatesClusterStateAndSurvivesLeaderLoss(t *testing.T) {
	dir := t.TempDir()
	a := startRaft(t, dir, "a")
	if err := a.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 10*time.Second, "a leads", a.IsLeader)
	b := startRaft(t, dir, "b")
	c := startRaft(t, dir, "c")
	for _, n := range []*RaftNode{b, c} {
		if err := a.AddServer(n.cfg.NodeID, n.Addr(), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Apply(Command{Kind: CmdBootstrap, Ring: placement.RingConfig{Partitions: 6}}, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b", "c"} {
		if err := a.Apply(Command{Kind: CmdJoin, Member: Member{Name: m}}, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	want := a.State().Epoch
	for _, n := range []*RaftNode{b, c} {
		testutil.PollTrue(t, 10*time.Second, n.cfg.NodeID+" catches up", func() bool { return n.State().Epoch == want })
	}
	if err := b.Apply(Command{Kind: CmdLeave, Name: "c"}, time.Second); err != ErrNotLeader {
		t.Fatalf("apply on a follower: %v", err)
	}
	// A refused command changes nothing anywhere.
	if err := a.Apply(Command{Kind: CmdHandoffDone, Partition: 0, Name: "nobody"}, time.Second); err == nil {
		t.Fatal("bad handoff accepted")
	}
	if a.State().Epoch != want {
		t.Fatal("refused command moved the epoch")
	}

	// Kill the leader: the other two elect one and keep committing.
	aAddr := a.Addr()
	a.Close()
	var l *RaftNode
	testutil.PollTrue(t, 10*time.Second, "new leader", func() bool { l = leaderOf(b, c); return l != nil })
	if err := l.Apply(Command{Kind: CmdJoin, Member: Member{Name: "d"}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.State().Members["d"]; !ok {
		t.Fatal("d missing after join under the new leader")
	}
	// The alarm schedule replicates too, and survives snapshots.
	at := time.UnixMilli(time.Now().UnixMilli())
	if err := l.Apply(Command{Kind: CmdPutAlarm, Alarm: &Alarm{ObjectID: "o1", Class: "db", Name: "x", At: at, Scheduled: at, Retry: 2}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(Command{Kind: CmdPutAlarm, Alarm: &Alarm{ObjectID: "o2", Class: "db", Name: "y", At: at, Scheduled: at}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(Command{Kind: CmdDeleteAlarm, Name: "o2"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// Alarms that ran are cleared in batches, each only if it was not set
	// again since: o3 ran at its time and goes; o1 is cleared for a time it
	// does not have and stays.
	if err := l.Apply(Command{Kind: CmdPutAlarm, Alarm: &Alarm{ObjectID: "o3", Class: "db", Name: "z", At: at, Scheduled: at}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	fired := []FiredAlarm{{ObjectID: "o3", At: at}, {ObjectID: "o1", At: at.Add(-time.Second)}, {ObjectID: "nope", At: at}}
	if err := l.Apply(Command{Kind: CmdDeleteAlarm, Fired: fired}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Alarm("o3"); ok {
		t.Fatal("o3 ran and was not cleared")
	}
	if _, ok := l.Alarm("o1"); !ok {
		t.Fatal("o1 was cleared for a time it did not have")
	}
	// Snapshots compact the log and a restarted node restores from them.
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	epoch := l.State().Epoch
	a2 := startRaft(t, dir, "a", aAddr) // a node keeps its Raft address
	if has, _ := a2.HasState(); !has {
		t.Fatal("restarted node has no raft state")
	}
	testutil.PollTrue(t, 15*time.Second, "restarted a catches up", func() bool { return a2.State().Epoch == epoch })
	testutil.PollTrue(t, 15*time.Second, "restarted a has the schedule", func() bool {
		got, ok := a2.Alarm("o1")
		return ok && got.Retry == 2 && got.At.Equal(at) && a2.AlarmCount() == 1
	})
}
