package placement

import (
	"fmt"
	"slices"
	"testing"

	"github.com/buraksezer/consistent"
)

func TestClosest(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4", "n5"}
	for _, tc := range []struct {
		name    string
		members []string
		owner   string
		n       int
		want    int
	}{
		{"three of five", members, "n3", 3, 3},
		{"more than members", members[:2], "n1", 3, 2},
		{"one", members, "n4", 1, 1},
		{"owner gone", members[1:], "n1", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Closest(tc.members, tc.owner, tc.n)
			if len(got) != tc.want || got[0] != tc.owner {
				t.Fatalf("Closest = %v, want %d members led by %s", got, tc.want, tc.owner)
			}
			seen := map[string]bool{}
			for _, m := range got {
				if seen[m] {
					t.Fatalf("Closest = %v: %s twice", got, m)
				}
				seen[m] = true
			}
			for _, m := range got[1:] {
				if !slices.Contains(tc.members, m) {
					t.Fatalf("Closest = %v: %s is not a member", got, m)
				}
			}
		})
	}
}

// The set depends on the member set, not its order, and a new member
// changes a set only by entering it.
func TestClosestStable(t *testing.T) {
	var members []string
	for i := range 30 {
		members = append(members, fmt.Sprintf("node-%d", i))
	}
	rev := slices.Clone(members)
	slices.Reverse(rev)
	grown := append(slices.Clone(members), "node-new")
	for _, owner := range members {
		a, b := Closest(members, owner, 3), Closest(rev, owner, 3)
		if !slices.Equal(a, b) {
			t.Fatalf("order changed the set of %s: %v vs %v", owner, a, b)
		}
		g := Closest(grown, owner, 3)
		if !slices.Contains(g, "node-new") && !slices.Equal(a, g) {
			t.Fatalf("a join changed %s's set without entering it: %v -> %v", owner, a, g)
		}
	}
}

// TestClosestMatchesLibrary: the sets are the library's closest-N for the
// partition, from the owner it places.
func TestClosestMatchesLibrary(t *testing.T) {
	cfg := RingConfig{Partitions: 271, ReplicationFactor: 20, Load: 1.25}
	for _, n := range []int{1, 2, 3, 5, 9} {
		var ms []consistent.Member
		var names []string
		for i := range n {
			names = append(names, fmt.Sprintf("dura-%d", i))
			ms = append(ms, libMember(names[i]))
		}
		ring := consistent.New(ms, consistent.Config{PartitionCount: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor, Load: cfg.Load, Hasher: Hasher{}})
		for p := range cfg.Partitions {
			lib, err := ring.GetClosestNForPartition(p, min(3, n))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, m := range lib {
				want = append(want, m.String())
			}
			if got := Closest(names, ring.GetPartitionOwner(p).String(), 3); !slices.Equal(got, want) {
				t.Fatalf("%d members, partition %d: Closest = %v, library %v", n, p, got, want)
			}
		}
	}
}
