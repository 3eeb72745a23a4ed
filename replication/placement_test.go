package replication

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/placement"
)

// ringAssign is the Assigner the nodes use (node.assignPartitions).
func ringAssign(members []string, p placement.RingConfig) ([]string, error) {
	return placement.Assign(members, p)
}

// TestJoinRefusedWhenRingIsFull: a member the ring has no room for is
// refused and the state stays as it was (it used to panic every node).
func TestJoinRefusedWhenRingIsFull(t *testing.T) {
	s := &ClusterState{}
	if err := s.Apply(Command{Kind: CmdBootstrap, Ring: placement.RingConfig{Partitions: 3, ReplicationFactor: 20, Load: 1.25}}, ringAssign); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b", "c"} {
		if err := s.Apply(Command{Kind: CmdJoin, Member: Member{Name: m}}, ringAssign); err != nil {
			t.Fatalf("join %s: %v", m, err)
		}
	}
	before := s.Clone()
	next := s.Clone() // the FSM applies to a copy and keeps it only on success
	err := next.Apply(Command{Kind: CmdJoin, Member: Member{Name: "d"}}, ringAssign)
	if !errors.Is(err, placement.ErrTooManyMembers) {
		t.Fatalf("join d: %v", err)
	}
	for _, want := range []string{"join d", "3 partitions", "at most 3 members", "--partitions"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if !reflect.DeepEqual(s, before) {
		t.Fatal("state changed")
	}
}

// TestRaftRefusesFullRingBeforeCommitAndNodesAgree: the leader refuses a
// join the ring cannot place without writing it to the log; every node
// computes the same placement from the same committed members.
func TestRaftRefusesFullRingBeforeCommitAndNodesAgree(t *testing.T) {
	dir := t.TempDir()
	start := func(id string) *RaftNode {
		n, err := NewRaftNode(RaftConfig{NodeID: id, Bind: "127.0.0.1:0", Dir: dir + "/" + id, Assign: ringAssign, Timing: LoopbackTiming()})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := start("a")
	if err := a.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 10*time.Second, "a leads", a.IsLeader)
	b, c := start("b"), start("c")
	for _, n := range []*RaftNode{b, c} {
		if err := a.AddServer(n.cfg.NodeID, n.Addr(), true); err != nil {
			t.Fatal(err)
		}
	}
	const partitions = 61
	if err := a.Apply(Command{Kind: CmdBootstrap, Ring: placement.RingConfig{Partitions: partitions, ReplicationFactor: 20, Load: 1.25}}, time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < partitions; i++ {
		if err := a.Apply(Command{Kind: CmdJoin, Member: Member{Name: fmt.Sprint("m", i)}}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if i%10 == 3 { // some leave again, some are removed
			kind := CmdLeave
			if i%20 == 3 {
				kind = CmdRemove
			}
			if err := a.Apply(Command{Kind: kind, Name: fmt.Sprint("m", i-1)}, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := a.Apply(Command{Kind: CmdJoin, Member: Member{Name: fmt.Sprint("m", i-1)}}, 2*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	index := a.AppliedIndex()
	err := a.Apply(Command{Kind: CmdJoin, Member: Member{Name: "one-too-many"}}, time.Second)
	if !errors.Is(err, placement.ErrTooManyMembers) || !strings.Contains(err.Error(), "at most 61 members") {
		t.Fatalf("join of member 62: %v", err)
	}
	if err := a.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := a.AppliedIndex(); got != index {
		t.Fatalf("the refused join was written to the log (applied index %d, then %d)", index, got)
	}
	want := a.State()
	if len(want.ActiveMembers()) != partitions {
		t.Fatalf("%d active members", len(want.ActiveMembers()))
	}
	for _, n := range []*RaftNode{b, c} {
		testutil.PollTrue(t, 10*time.Second, n.cfg.NodeID+" catches up", func() bool { return n.AppliedIndex() >= index })
		if got := n.State(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s's state differs from the leader's", n.cfg.NodeID)
		}
	}
	// And placement is the ring's answer for the committed members, not
	// an artifact of the order they came in.
	ring, _ := ringAssign(want.ActiveMembers(), want.Ring)
	for p, part := range want.Partitions {
		if part.Owner != ring[p] && part.Target != ring[p] {
			t.Fatalf("partition %d: owner %s, target %s; the ring says %s", p, part.Owner, part.Target, ring[p])
		}
	}
}
