package replication

import (
	"slices"
	"testing"

	"github.com/dura-dev/dura/placement"
)

func replicatedState(t *testing.T, factor int, members ...string) *ClusterState {
	t.Helper()
	s := &ClusterState{}
	apply(t, s, Command{Kind: CmdBootstrap, Ring: placement.RingConfig{Partitions: 6, ReplicationFactor: 20, Load: 1.25}, Replication: Replication{Factor: factor, MinInSync: min(2, factor)}})
	for _, m := range members {
		apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: m, HTTP: m + ":8080"}})
	}
	return s
}

// finishMoves completes every handoff, as the targets would report; with
// copies, a partition away from its home moves there as the cluster
// moves it: the home, a replica, is seeded and enters the in-sync set,
// the leader moves the primary, the home reports the handoff.
func finishMoves(t *testing.T, s *ClusterState) {
	t.Helper()
	for i, p := range s.Partitions {
		switch {
		case p.Target != "":
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: i, Name: p.Target, Epoch: p.Since})
		case p.Home != "" && p.Home != p.Owner && s.Replication.Copies() >= 2:
			if !slices.Contains(p.Replicas, p.Home) {
				t.Fatalf("partition %d: its home %s is not among its replicas: %+v", i, p.Home, p)
			}
			apply(t, s, Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: i, Version: p.Version, Add: []string{p.Home}}}})
			p = s.Partitions[i]
			apply(t, s, Command{Kind: CmdMove, Moves: []Move{{Partition: i, Version: p.Version, Target: p.Home}}})
			p = s.Partitions[i]
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: i, Name: p.Target, Epoch: p.Since, FromCopy: true})
		}
	}
}

// syncAll adds every replica to its partition's in-sync set, as replicas
// that finished seeding would.
func syncAll(t *testing.T, s *ClusterState) {
	t.Helper()
	var changes []InSyncChange
	for i, p := range s.Partitions {
		changes = append(changes, InSyncChange{Partition: i, Version: p.Version, Add: p.Replicas})
	}
	apply(t, s, Command{Kind: CmdInSync, InSync: changes})
}

// syncedState is three members a, b, c with three copies of every
// partition, every move done and every replica in sync.
func syncedState(t *testing.T) *ClusterState {
	t.Helper()
	s := replicatedState(t, 3, "a", "b", "c")
	finishMoves(t, s)
	syncAll(t, s)
	return s
}

func TestReplicaSets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		factor  int
		members []string
		want    int // replicas per partition
	}{
		{"one node", 3, []string{"a"}, 1},
		{"two of three", 3, []string{"a", "b"}, 2},
		{"three", 3, []string{"a", "b", "c"}, 3},
		{"three of five", 3, []string{"a", "b", "c", "d", "e"}, 3},
		{"factor one", 1, []string{"a", "b", "c"}, 1},
		{"state before replication", 0, []string{"a", "b"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := replicatedState(t, tc.factor, tc.members...)
			finishMoves(t, s)
			for i, p := range s.Partitions {
				if len(p.Replicas) != tc.want || p.Replicas[0] != p.Owner {
					t.Fatalf("partition %d: %+v, want %d replicas led by the owner", i, p, tc.want)
				}
				if !slices.Equal(p.InSync, []string{p.Owner}) {
					t.Fatalf("partition %d: in-sync %v before any replica synced", i, p.InSync)
				}
			}
			want := 0
			if tc.want > 1 {
				want = len(s.Partitions)
			}
			if got := s.UnderReplicated(); got != want {
				t.Fatalf("under-replicated %d, want %d", got, want)
			}
			if got := s.Lagging(5); len(got) != min(want, 5) || (want > 0 && (got[0] != 0 || got[len(got)-1] != 4)) {
				t.Fatalf("lagging (first 5) %v, want the lowest %d partitions", got, min(want, 5))
			}
			syncAll(t, s)
			if got := s.UnderReplicated(); got != 0 {
				t.Fatalf("under-replicated %d after every replica synced", got)
			}
			if got := s.Lagging(5); len(got) != 0 {
				t.Fatalf("lagging %v after every replica synced", got)
			}
		})
	}
}

func TestInSyncCompareAndSet(t *testing.T) {
	s := replicatedState(t, 3, "a", "b", "c")
	finishMoves(t, s)
	p := s.Partitions[0]
	other := p.Replicas[1]
	stale := p.Version
	apply(t, s, Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: 0, Version: p.Version, Add: []string{other, "nobody"}}}})
	if got := s.Partitions[0].InSync; !slices.Equal(got, []string{p.Owner, other}) {
		t.Fatalf("in-sync %v after adding %s (and a non-replica)", got, other)
	}
	// A removal decided on the older version does nothing.
	apply(t, s, Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: 0, Version: stale, Remove: []string{other}}}})
	if got := s.Partitions[0].InSync; !slices.Contains(got, other) {
		t.Fatalf("a stale removal applied: %v", got)
	}
	cur := s.Partitions[0].Version
	apply(t, s, Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: 0, Version: cur, Remove: []string{other, p.Owner}}}})
	if got := s.Partitions[0].InSync; !slices.Equal(got, []string{p.Owner}) {
		t.Fatalf("in-sync %v: want only the owner, who never leaves", got)
	}
	if err := s.Apply(Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: 99}}}, roundRobin); err == nil {
		t.Fatal("a change of a partition that does not exist was accepted")
	}
}

// A forced removal of a primary hands its partitions to an in-sync
// replica, with their data; without one they go empty to the new owner.
func TestRemovePromotesInSyncReplica(t *testing.T) {
	s := syncedState(t)
	before := slices.Clone(s.Partitions)
	apply(t, s, Command{Kind: CmdRemove, Name: "a"})
	for i, p := range s.Partitions {
		if before[i].Owner != "a" {
			continue
		}
		if p.Owner == "a" || p.Owner == "" || !slices.Contains(before[i].InSync, p.Owner) {
			t.Fatalf("partition %d: owner %q after removing a, in-sync were %v", i, p.Owner, before[i].InSync)
		}
		if slices.Contains(p.Replicas, "a") || slices.Contains(p.InSync, "a") {
			t.Fatalf("partition %d still lists the removed member: %+v", i, p)
		}
	}

	s = replicatedState(t, 3, "a", "b", "c")
	finishMoves(t, s)
	apply(t, s, Command{Kind: CmdRemove, Name: "a"})
	for i, p := range s.Partitions {
		if p.Owner == "a" || p.Owner == "" {
			t.Fatalf("partition %d: owner %q", i, p.Owner)
		}
	}
}

func TestReplicationValidate(t *testing.T) {
	for _, r := range []Replication{{Factor: -1}, {Factor: 2, MinInSync: 3}, {Factor: 3, MinInSync: -1}} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	s := &ClusterState{}
	if err := s.Apply(Command{Kind: CmdBootstrap, Ring: placement.RingConfig{Partitions: 6, ReplicationFactor: 20, Load: 1.25}, Replication: Replication{Factor: 2, MinInSync: 3}}, roundRobin); err == nil {
		t.Fatal("bootstrap with min in-sync above the factor accepted")
	}
}

func TestPromote(t *testing.T) {
	s := syncedState(t)
	p := s.Partitions[0]
	next := p.InSync[1]
	stale := p.Version
	apply(t, s, Command{Kind: CmdPromote, Promote: []Promotion{{Partition: 0, Version: p.Version, Owner: next}}})
	got := s.Partitions[0]
	if got.Owner != next || !slices.Equal(got.InSync, []string{next}) || got.Replicas[0] != next || got.Version == stale {
		t.Fatalf("after promoting %s: %+v", next, got)
	}
	// A promotion decided on an older version, or of a replica not in
	// sync, does nothing.
	epoch := s.Epoch
	apply(t, s, Command{Kind: CmdPromote, Promote: []Promotion{{Partition: 0, Version: stale, Owner: p.Owner}}})
	apply(t, s, Command{Kind: CmdPromote, Promote: []Promotion{{Partition: 0, Version: s.Partitions[0].Version, Owner: p.Owner}}})
	if s.Partitions[0].Owner != next || s.Epoch != epoch {
		t.Fatalf("a stale or out-of-sync promotion applied: %+v", s.Partitions[0])
	}
	if err := s.Apply(Command{Kind: CmdPromote, Promote: []Promotion{{Partition: -1}}}, roundRobin); err == nil {
		t.Fatal("a promotion of no partition was accepted")
	}
}

// A member back with an empty disk leaves the in-sync sets at once, and
// takes its new data directory only once it owns nothing.
func TestDataLostMemberReincarnates(t *testing.T) {
	s := replicatedState(t, 3, "a", "b", "c")
	for _, name := range []string{"a", "b", "c"} {
		s.Members[name].Incarnation = name + "-1"
	}
	finishMoves(t, s)
	syncAll(t, s)
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "c", Incarnation: "c-2"}})
	if m := s.Members["c"]; !m.DataLost || m.Incarnation != "c-1" {
		t.Fatalf("c after coming back empty: %+v", m)
	}
	var promos []Promotion
	for i, p := range s.Partitions {
		if p.Owner != "c" && slices.Contains(p.InSync, "c") {
			t.Fatalf("partition %d still counts c in sync: %+v", i, p)
		}
		if p.Owner == "c" {
			promos = append(promos, Promotion{Partition: i, Version: p.Version, Owner: p.InSync[1]})
		}
	}
	if len(promos) == 0 {
		t.Fatal("c owns nothing: the test needs it to own some partitions")
	}
	if err := s.Apply(Command{Kind: CmdReincarnate, Member: Member{Name: "c", Incarnation: "c-2"}}, roundRobin); err == nil {
		t.Fatal("c took a new incarnation while it still owned partitions")
	}
	apply(t, s, Command{Kind: CmdPromote, Promote: promos})
	apply(t, s, Command{Kind: CmdReincarnate, Member: Member{Name: "c", Incarnation: "c-2"}})
	if m := s.Members["c"]; m.DataLost || m.Incarnation != "c-2" {
		t.Fatalf("c after reincarnating: %+v", m)
	}
}

func TestMoveToInSyncReplica(t *testing.T) {
	s := syncedState(t)
	p := s.Partitions[0]
	to := p.InSync[1]
	notInSync := Move{Partition: 1, Version: s.Partitions[1].Version, Target: "nobody"}
	apply(t, s, Command{Kind: CmdMove, Moves: []Move{{Partition: 0, Version: p.Version, Target: to}, notInSync}})
	got := s.Partitions[0]
	if got.Target != to || got.Since != s.Epoch || got.Ready() {
		t.Fatalf("after moving to %s: %+v", to, got)
	}
	if s.Partitions[1].Target != "" {
		t.Fatalf("a move to a non-replica started: %+v", s.Partitions[1])
	}
	apply(t, s, Command{Kind: CmdHandoffDone, Partition: 0, Name: to, Epoch: got.Since})
	if s.Partitions[0].Owner != to || !s.Partitions[0].Ready() {
		t.Fatalf("after the handoff: %+v", s.Partitions[0])
	}
}

// A move to an in-sync replica that serves its own copy completes only
// while that copy is still in sync: the old owner may have taken it out
// (and acknowledged writes without it) while it drained.
func TestMoveFromCopyNeedsTheTargetInSync(t *testing.T) {
	s := syncedState(t)
	p := s.Partitions[0]
	to := p.InSync[1]
	apply(t, s, Command{Kind: CmdMove, Moves: []Move{{Partition: 0, Version: p.Version, Target: to}}})
	since := s.Partitions[0].Since
	cur := s.Partitions[0]
	apply(t, s, Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: 0, Version: cur.Version, Remove: []string{to}}}})
	if slices.Contains(s.Partitions[0].InSync, to) {
		t.Fatalf("%s still in sync: %+v", to, s.Partitions[0])
	}
	if err := s.Apply(Command{Kind: CmdHandoffDone, Partition: 0, Name: to, Epoch: since, FromCopy: true}, roundRobin); err == nil {
		t.Fatalf("a handoff from a copy that left the in-sync set completed: %+v", s.Partitions[0])
	}
	if got := s.Partitions[0]; got.Owner != p.Owner || got.Target != to {
		t.Fatalf("the refused handoff changed the partition: %+v", got)
	}
	// The same move completes from the old owner's files.
	apply(t, s, Command{Kind: CmdHandoffDone, Partition: 0, Name: to, Epoch: since})
	if s.Partitions[0].Owner != to || !s.Partitions[0].Ready() {
		t.Fatalf("after the handoff of the files: %+v", s.Partitions[0])
	}
}

// A move from a copy keeps in the in-sync set the replicas the old owner
// vouched for, and only those: not the old owner, not a member that was
// not in the set, not the new owner twice. A move of files keeps none.
func TestHandoffKeepsVouchedReplicas(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fromCopy bool
		keep     func(p Partition, to string) []string
		want     func(p Partition, to string) []string
	}{
		{"vouched replica kept", true,
			func(p Partition, to string) []string { return []string{other(p, to)} },
			func(p Partition, to string) []string { return []string{to, other(p, to)} }},
		{"none vouched", true,
			func(Partition, string) []string { return nil },
			func(p Partition, to string) []string { return []string{to} }},
		{"old owner, new owner and strangers not kept", true,
			func(p Partition, to string) []string { return []string{p.Owner, to, "zz", other(p, to), other(p, to)} },
			func(p Partition, to string) []string { return []string{to, other(p, to)} }},
		{"a move of files keeps none", false,
			func(p Partition, to string) []string { return []string{other(p, to)} },
			func(p Partition, to string) []string { return []string{to} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := syncedState(t)
			p := s.Partitions[0]
			to := p.InSync[1]
			apply(t, s, Command{Kind: CmdMove, Moves: []Move{{Partition: 0, Version: p.Version, Target: to}}})
			moving := s.Partitions[0]
			apply(t, s, Command{Kind: CmdHandoffDone, Partition: 0, Name: to, Epoch: moving.Since, FromCopy: tc.fromCopy, Keep: tc.keep(p, to)})
			got := s.Partitions[0]
			if want := tc.want(p, to); got.Owner != to || !slices.Equal(got.InSync, want) {
				t.Fatalf("after the handoff: owner %s, in sync %v; want %s, %v", got.Owner, got.InSync, to, want)
			}
			if got.Version <= moving.Version {
				t.Fatalf("version %d after the handoff, %d before", got.Version, moving.Version)
			}
		})
	}
}

// other is the in-sync replica of p that is neither its owner nor to.
func other(p Partition, to string) string {
	for _, m := range p.InSync {
		if m != p.Owner && m != to {
			return m
		}
	}
	return ""
}

// A member back without its data cannot enter an in-sync set before it
// takes its new directory, and moves to it are called off.
func TestDataLostMemberEntersNoSet(t *testing.T) {
	s := replicatedState(t, 3, "a", "b", "c")
	for _, name := range []string{"a", "b", "c"} {
		s.Members[name].Incarnation = name + "-1"
	}
	finishMoves(t, s)
	syncAll(t, s)
	var moved int
	for i, p := range s.Partitions {
		if p.Owner != "c" && slices.Contains(p.InSync, "c") {
			apply(t, s, Command{Kind: CmdMove, Moves: []Move{{Partition: i, Version: p.Version, Target: "c"}}})
			moved = i
			break
		}
	}
	if s.Partitions[moved].Target != "c" {
		t.Fatal("no move to c started")
	}
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "c", Incarnation: "c-2"}})
	if s.Partitions[moved].Target != "" {
		t.Fatalf("a move to the member that lost its data goes on: %+v", s.Partitions[moved])
	}
	for i, p := range s.Partitions {
		if p.Owner != "c" {
			apply(t, s, Command{Kind: CmdInSync, InSync: []InSyncChange{{Partition: i, Version: p.Version, Add: []string{"c"}}}})
			if slices.Contains(s.Partitions[i].InSync, "c") {
				t.Fatalf("partition %d took the member that lost its data in sync", i)
			}
		}
	}
}

// With copies, a join or a graceful leave never makes a partition
// unavailable while data moves: the new home joins the replica set and is
// seeded while the owner serves; only then does the primary move (a drain
// and a switch), and the copy no longer needed leaves the set.
func TestMembershipChangesWithCopiesMoveNoFiles(t *testing.T) {
	s := syncedState(t)
	before := slices.Clone(s.Partitions)
	apply(t, s, Command{Kind: CmdJoin, Member: Member{Name: "d", HTTP: "d:8080"}})
	homed := 0
	for i, p := range s.Partitions {
		if p.Target != "" || p.Owner != before[i].Owner {
			t.Fatalf("partition %d: the join moved it at once: %+v (was %+v)", i, p, before[i])
		}
		if p.Home == "d" {
			homed++
			if !slices.Contains(p.Replicas, "d") || slices.Contains(p.InSync, "d") {
				t.Fatalf("partition %d: its new home d is not a replica being seeded: %+v", i, p)
			}
			if len(p.InSync) < 2 {
				t.Fatalf("partition %d: the join took in-sync copies away: %+v", i, p)
			}
		}
	}
	if homed == 0 {
		t.Fatal("the ring gave d no partition")
	}
	finishMoves(t, s)
	for i, p := range s.Partitions {
		if p.Owner != p.Home || len(p.Replicas) != 3 || p.Replicas[0] != p.Owner {
			t.Fatalf("partition %d after the moves: %+v", i, p)
		}
	}
	syncAll(t, s)
	apply(t, s, Command{Kind: CmdLeave, Name: "b"})
	for i, p := range s.Partitions {
		if p.Target != "" {
			t.Fatalf("partition %d: the leave moved it at once: %+v", i, p)
		}
	}
	if s.Members["b"].Status != Leaving {
		t.Fatalf("b: %+v", s.Members["b"])
	}
	finishMoves(t, s)
	if s.Members["b"].Status != Left {
		t.Fatalf("b after its partitions moved: %+v", s.Members["b"])
	}
	for i, p := range s.Partitions {
		if slices.Contains(p.Replicas, "b") {
			t.Fatalf("partition %d still keeps a copy on b: %+v", i, p)
		}
	}
}
