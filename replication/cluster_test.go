package replication

import (
	"testing"

	"github.com/dura-dev/dura/placement"
)

// roundRobin is a simple Assigner for tests: partition i goes to the
// i-th active member (modulo).
func roundRobin(members []string, p placement.RingConfig) ([]string, error) {
	if len(members) == 0 {
		return nil, nil
	}
	out := make([]string, p.Partitions)
	for i := range out {
		out[i] = members[i%len(members)]
	}
	return out, nil
}

func apply(t *testing.T, s *ClusterState, c Command) {
	t.Helper()
	if err := s.Apply(c, roundRobin); err != nil {
		t.Fatalf("%s: %v", c.Kind, err)
	}
}

func newState(t *testing.T, members ...string) *ClusterState {
	t.Helper()
	s := &ClusterState{}
	apply(t, s, Command{Kind: CmdBootstrap, Ring: placement.RingConfig{Partitions: 6, ReplicationFactor: 20, Load: 1.25}})
	for _, m := range members {
		apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: m, HTTP: m + ":8080"}})
	}
	return s
}

func TestFirstMemberOwnsEverythingReady(t *testing.T) {
	s := newState(t, "a")
	for i, p := range s.Partitions {
		if p.Owner != "a" || !p.Ready() {
			t.Fatalf("partition %d = %+v", i, p)
		}
	}
	if s.Epoch != 2 {
		t.Fatalf("epoch %d", s.Epoch)
	}
}

func TestJoinStartsHandoffsUntilDone(t *testing.T) {
	s := newState(t, "a")
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "b"}})
	moving := 0
	for i, p := range s.Partitions {
		if p.Target != "" {
			moving++
			if p.Owner != "a" || p.Target != "b" || p.Ready() {
				t.Fatalf("partition %d = %+v", i, p)
			}
		}
	}
	if moving != 3 {
		t.Fatalf("%d partitions moving, want 3", moving)
	}
	// Only the target may report the handoff done.
	if err := s.Apply(Command{Kind: CmdHandoffDone, Partition: 1, Name: "a"}, roundRobin); err == nil {
		t.Fatal("handoff done by the wrong node accepted")
	}
	for i, p := range s.Partitions {
		if p.Target == "b" {
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: i, Name: "b", Epoch: p.Since})
		}
	}
	if c := s.Counts(); c["a"] != 3 || c["b"] != 3 {
		t.Fatalf("counts %v", c)
	}
	for _, p := range s.Partitions {
		if !p.Ready() {
			t.Fatalf("partition not ready: %+v", p)
		}
	}
}

func TestLeaveHandsOffThenRetires(t *testing.T) {
	s := newState(t, "a", "b")
	for i, p := range s.Partitions {
		if p.Target != "" {
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: i, Name: p.Target, Epoch: p.Since})
		}
	}
	apply(t, s, Command{Kind: CmdLeave, Name: "b"})
	if s.Members["b"].Status != Leaving {
		t.Fatalf("b is %s", s.Members["b"].Status)
	}
	for i, p := range s.Partitions {
		if p.Owner == "b" {
			if p.Target != "a" {
				t.Fatalf("partition %d of the leaver goes to %q", i, p.Target)
			}
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: i, Name: "a", Epoch: p.Since})
		}
	}
	if s.Members["b"].Status != Left {
		t.Fatalf("b is %s after handing everything off", s.Members["b"].Status)
	}
	if err := s.Apply(Command{Kind: CmdLeave, Name: "a"}, roundRobin); err == nil {
		t.Fatal("the last active member was allowed to leave")
	}
}

func TestCrashedMemberKeepsPartitionsUntilRemoved(t *testing.T) {
	s := newState(t, "a", "b")
	for i, p := range s.Partitions {
		if p.Target != "" {
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: i, Name: p.Target, Epoch: p.Since})
		}
	}
	// Nothing in the state changes when b merely stops answering; only a
	// forced removal moves its partitions, at once and ready.
	apply(t, s, Command{Kind: CmdRemove, Name: "b"})
	for i, p := range s.Partitions {
		if p.Owner != "a" || !p.Ready() {
			t.Fatalf("partition %d after removing b: %+v", i, p)
		}
	}
	if s.Members["b"].Status != Removed {
		t.Fatalf("b is %s", s.Members["b"].Status)
	}
}

func TestRepeatedJoinIsANoOp(t *testing.T) {
	s := newState(t, "a")
	epoch := s.Epoch
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "a", HTTP: "a:8080"}})
	if s.Epoch != epoch {
		t.Fatalf("epoch moved %d -> %d on a repeated join", epoch, s.Epoch)
	}
	if err := (&ClusterState{}).Apply(Command{Kind: CmdJoin, Member: Member{Name: "x"}}, roundRobin); err == nil {
		t.Fatal("join before bootstrap accepted")
	}
	if err := s.Apply(Command{Kind: "nope"}, roundRobin); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestStaleHandoffReportIsRefused(t *testing.T) {
	s := newState(t, "a")
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "b"}})
	p := -1
	for i, part := range s.Partitions {
		if part.Target == "b" {
			p = i
			break
		}
	}
	first := s.Partitions[p].Since
	// b leaves before it finished: the move is cancelled; it comes back
	// and the move starts again at a later epoch.
	apply(t, s, Command{Kind: CmdLeave, Name: "b"})
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "b"}})
	if s.Partitions[p].Target != "b" || s.Partitions[p].Since == first {
		t.Fatalf("partition %d after the restart of the move: %+v", p, s.Partitions[p])
	}
	if err := s.Apply(Command{Kind: CmdHandoffDone, Partition: p, Name: "b", Epoch: first}, roundRobin); err == nil {
		t.Fatal("a report from the cancelled move completed the new one")
	}
	apply(t, s, Command{Kind: CmdHandoffDone, Partition: p, Name: "b", Epoch: s.Partitions[p].Since})
}
