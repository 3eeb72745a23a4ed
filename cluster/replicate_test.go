package cluster

import (
	"maps"
	"slices"
	"testing"

	"github.com/dura-dev/dura/replication"
)

// TestMissedSortsLaggards: a replica that did not acknowledge a record
// leaves the in-sync set if it was in it when the record was shipped or
// is in it now (admitted meanwhile); a follower is dropped, so that its
// primary refuses to admit it, unless a newer seeding of it started.
func TestMissedSortsLaggards(t *testing.T) {
	for _, tc := range []struct {
		name      string
		was, now  []string
		followers map[string]uint64 // before
		followed  map[string]uint64 // the seedings the record went to
		lagging   []string
		dropped   []string
		remaining map[string]uint64
	}{
		{"in the set when shipped", []string{"a", "b"}, []string{"a", "b"}, nil, nil, []string{"b"}, []string{"b"}, map[string]uint64{}},
		{"admitted since", []string{"a"}, []string{"a", "c"}, map[string]uint64{"c": 1}, map[string]uint64{"c": 1}, []string{"c"}, []string{"c"}, map[string]uint64{"c": 1}},
		{"a follower is dropped", []string{"a"}, []string{"a"}, map[string]uint64{"c": 1}, map[string]uint64{"c": 1}, []string{"c"}, nil, map[string]uint64{}},
		{"a newer seeding stays", []string{"a"}, []string{"a"}, map[string]uint64{"c": 2}, map[string]uint64{"c": 1}, []string{"c"}, nil, map[string]uint64{"c": 2}},
		{"others untouched", []string{"a", "b"}, []string{"a", "b"}, map[string]uint64{"c": 1, "d": 3}, map[string]uint64{"c": 1, "d": 3}, []string{"b", "c"}, []string{"b"}, map[string]uint64{"d": 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &stream{followers: maps.Clone(tc.followers)}
			if s.followers == nil {
				s.followers = map[string]uint64{}
			}
			current := func() replication.Partition {
				// Read under the stream's lock, which AdmitReplica holds
				// until its change applies.
				if s.mu.TryLock() {
					s.mu.Unlock()
					t.Error("the current state was read without the stream's lock")
				}
				return replication.Partition{InSync: tc.now}
			}
			got := s.missed(current, replication.Partition{InSync: tc.was}, tc.lagging, tc.followed)
			if !slices.Equal(got, tc.dropped) {
				t.Fatalf("dropped %v, want %v", got, tc.dropped)
			}
			if !maps.Equal(s.followers, tc.remaining) {
				t.Fatalf("followers %v, want %v", s.followers, tc.remaining)
			}
		})
	}
}

// A node that becomes a partition's primary again forgets the followers
// of its earlier term: records of the new term go to the in-sync set
// and to replicas seeded from it since, not to one seeded back then
// (whose receiver would take them as a newer primary's stream).
func TestForgetFollowers(t *testing.T) {
	s := &stream{followers: map[string]uint64{"n1": 3}}
	s.forgetFollowers()
	if len(s.followers) != 0 {
		t.Fatalf("followers of the earlier term kept: %v", s.followers)
	}
	s.missed(func() replication.Partition { return replication.Partition{} }, replication.Partition{}, []string{"n1"}, map[string]uint64{"n1": 3})
	if len(s.followers) != 0 {
		t.Fatalf("followers after a lag: %v", s.followers)
	}
}
