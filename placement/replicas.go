package placement

import (
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Successors orders members by the hashes of their names, the order in
// which buraksezer/consistent's GetClosestNForPartition picks a
// partition's replicas after its owner. Build it once per member set.
type Successors struct {
	names []string       // by hash, then name
	index map[string]int // name -> position in names
}

// NewSuccessors orders members (duplicates ignored).
func NewSuccessors(members []string) *Successors {
	type member struct {
		hash uint64
		name string
	}
	ms := make([]member, 0, len(members))
	index := make(map[string]int, len(members))
	for _, m := range members {
		if _, ok := index[m]; !ok {
			index[m] = 0
			ms = append(ms, member{xxhash.Sum64String(m), m})
		}
	}
	slices.SortFunc(ms, func(a, b member) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	s := &Successors{names: make([]string, len(ms)), index: index}
	for i, m := range ms {
		s.names[i] = m.name
		index[m.name] = i
	}
	return s
}

// Closest is the replica set of a partition whose primary is owner: owner
// followed by the members after it in hash order, wrapping around, n in
// all (fewer if there are fewer members). Every node computes the same
// set from the same member set, and a join changes a set only by entering
// it. An owner that is not a member still comes first, and the walk
// starts where its hash falls.
func (s *Successors) Closest(owner string, n int) []string {
	out := make([]string, 1, n)
	out[0] = owner
	if len(s.names) == 0 {
		return out
	}
	start, ok := s.index[owner]
	if !ok {
		h := xxhash.Sum64String(owner)
		start, _ = slices.BinarySearchFunc(s.names, h, func(name string, h uint64) int {
			switch nh := xxhash.Sum64String(name); {
			case nh < h:
				return -1
			case nh > h:
				return 1
			}
			return strings.Compare(name, owner)
		})
		start-- // the walk's first step lands on the member after the owner's hash
	}
	for i := 1; i <= len(s.names) && len(out) < n; i++ {
		if m := s.names[(start+i+len(s.names))%len(s.names)]; m != owner {
			out = append(out, m)
		}
	}
	return out
}

// Closest is NewSuccessors(members).Closest(owner, n), for one set.
func Closest(members []string, owner string, n int) []string {
	return NewSuccessors(members).Closest(owner, n)
}
