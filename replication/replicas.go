package replication

import (
	"fmt"
	"slices"

	"github.com/dura-dev/dura/placement"
)

// Replication is how many copies a cluster keeps of each partition,
// fixed when it is created.
type Replication struct {
	// Factor is the number of replicas of each partition, the primary
	// included; capped by the number of active members. 0 (a state from
	// before replication) means 1.
	Factor int `json:"factor,omitempty"`
	// MinInSync is how many in-sync replicas a write needs; with fewer,
	// writes are refused (reads go on). 0 means 1.
	MinInSync int `json:"min_insync,omitempty"`
}

// Validate reports counts that cannot work.
func (r Replication) Validate() error {
	if r.Factor < 0 || r.MinInSync < 0 || r.MinInSync > max(r.Factor, 1) {
		return fmt.Errorf("replication factor %d with min in-sync %d: both must be positive and min in-sync at most the factor", r.Factor, r.MinInSync)
	}
	return nil
}

// Copies is the replica count asked for (at least 1).
func (r Replication) Copies() int { return max(r.Factor, 1) }

// Quorum is the number of in-sync replicas a write needs (at least 1).
func (r Replication) Quorum() int { return max(r.MinInSync, 1) }

// InSyncChange is one partition's in-sync set change: applied only if
// the partition's version is still Version, so a decision made on an
// older view (a replica that caught up with a primary since replaced)
// does nothing.
type InSyncChange struct {
	Partition int      `json:"partition"`
	Version   uint64   `json:"version"`
	Add       []string `json:"add,omitempty"`
	Remove    []string `json:"remove,omitempty"`
}

// checkPartitions refuses a command of kind whose n changes name a
// partition (partition(i)) the state does not have: then none applies.
func (s *ClusterState) checkPartitions(kind string, n int, partition func(i int) int) error {
	if err := s.bootstrapped(); err != nil {
		return err
	}
	for i := range n {
		if p := partition(i); p < 0 || p >= len(s.Partitions) {
			return fmt.Errorf("%s: no partition %d", kind, p)
		}
	}
	return nil
}

// PendingHome is the member partition p's primary is to move to: with
// copies, its home, when that is an active member other than its owner.
// "" when there is none (it is home, it has one copy, or no home was
// recorded yet: a state from before homes, until its next member change).
func (s *ClusterState) PendingHome(p Partition) string {
	if s.Replication.Copies() < 2 || p.Owner == "" || p.Home == p.Owner {
		return ""
	}
	if m := s.Members[p.Home]; m == nil || m.Status != Active {
		return ""
	}
	return p.Home
}

// placeReplicas gives every owned partition its replica set: the owner,
// the member it moves to if it moves, then the ring's closest members
// after the one it belongs on (where it moves, else its home, else its
// owner): an owner away from home keeps its copy beside them until the
// primary has moved. The in-sync set keeps the owner and the in-sync
// members still in the set; a new replica enters it only by an in_sync
// command, once it holds a copy.
func (s *ClusterState) placeReplicas() {
	n := s.Replication.Copies()
	succ := placement.NewSuccessors(s.ActiveMembers())
	for i := range s.Partitions {
		p := &s.Partitions[i]
		var reps, insync []string
		if p.Owner != "" {
			head := p.Owner
			if h := s.PendingHome(*p); h != "" {
				head = h
			}
			reps = []string{p.Owner}
			if p.Target != "" {
				head = p.Target
				reps = append(reps, p.Target)
			}
			for _, m := range succ.Closest(head, n) {
				if !slices.Contains(reps, m) {
					reps = append(reps, m)
				}
			}
			insync = []string{p.Owner}
			for _, m := range p.InSync {
				if m != p.Owner && slices.Contains(reps, m) {
					insync = append(insync, m)
				}
			}
		}
		if !slices.Equal(reps, p.Replicas) || !slices.Equal(insync, p.InSync) {
			p.Replicas, p.InSync = reps, insync
			p.Version++
		}
	}
}

// applyInSync makes the changes whose versions still hold; the others
// are skipped (their senders see the state and decide again). Only a
// replica enters a set; the owner never leaves it.
func (s *ClusterState) applyInSync(changes []InSyncChange) error {
	if err := s.checkPartitions("in_sync", len(changes), func(i int) int { return changes[i].Partition }); err != nil {
		return err
	}
	for _, c := range changes {
		p := &s.Partitions[c.Partition]
		if p.Version != c.Version {
			continue
		}
		insync := slices.Clone(p.InSync)
		for _, m := range c.Remove {
			if m != p.Owner {
				insync = slices.DeleteFunc(insync, func(x string) bool { return x == m })
			}
		}
		for _, m := range c.Add {
			// A member back without its data enters no set until it has
			// taken its new directory (reincarnate).
			if mem := s.Members[m]; mem == nil || mem.DataLost {
				continue
			}
			if slices.Contains(p.Replicas, m) && !slices.Contains(insync, m) {
				insync = append(insync, m)
			}
		}
		if !slices.Equal(insync, p.InSync) {
			p.InSync = insync
			p.Version++
		}
	}
	return nil
}

// Promotion makes Owner, an in-sync replica, the primary of Partition in
// place of one that is gone, if the partition is still at Version.
type Promotion struct {
	Partition int    `json:"partition"`
	Version   uint64 `json:"version"`
	Owner     string `json:"owner"`
}

// applyPromote makes the promotions whose versions still hold. The new
// primary is the only in-sync replica at first: the others followed the
// old primary's stream, and may hold a commit it shipped that the new
// one lacks, so they are seeded again before they count. A move of the
// partition is cancelled.
func (s *ClusterState) applyPromote(ps []Promotion) error {
	if err := s.checkPartitions("promote", len(ps), func(i int) int { return ps[i].Partition }); err != nil {
		return err
	}
	changed := false
	for _, pr := range ps {
		p := &s.Partitions[pr.Partition]
		if p.Version != pr.Version || p.Owner == pr.Owner || !slices.Contains(p.InSync, pr.Owner) {
			continue
		}
		m := s.Members[pr.Owner]
		if m == nil || m.Status != Active || m.DataLost {
			continue
		}
		p.Owner, p.Target, p.Since = pr.Owner, "", 0
		p.InSync = []string{pr.Owner}
		p.Version++
		changed = true
	}
	if changed {
		s.Epoch++
		s.placeReplicas()
	}
	return nil
}

// promoteReplicas makes an in-sync replica the owner of each partition
// gone owned, so a forced removal hands partitions on with their data
// where a copy exists; the others are left unowned for the rebalance.
func (s *ClusterState) promoteReplicas(gone string) {
	for i := range s.Partitions {
		p := &s.Partitions[i]
		if p.Owner != gone {
			continue
		}
		p.Owner = ""
		for _, m := range p.InSync {
			if m != gone && s.Members[m] != nil && s.Members[m].Status == Active && !s.Members[m].DataLost {
				p.Owner = m
				break
			}
		}
		p.InSync = slices.DeleteFunc(slices.Clone(p.InSync), func(x string) bool { return x == gone })
		p.Version++
	}
}

// WriteQuorum is how many in-sync replicas a write needs: --min-insync,
// capped by the copies the active members can hold. Checked on every
// write: it counts, it does not list.
func (s *ClusterState) WriteQuorum() int {
	return min(s.Replication.Quorum(), s.Replication.Copies(), max(s.activeCount(), 1))
}

// UnderReplicated counts the partitions whose in-sync set is smaller than
// the replica count the active members allow.
func (s *ClusterState) UnderReplicated() int {
	n, want := 0, s.copiesWanted()
	for _, p := range s.Partitions {
		if lagging(p, want) {
			n++
		}
	}
	return n
}

// Lagging returns the first limit under-replicated partitions, lowest
// numbers first.
func (s *ClusterState) Lagging(limit int) []int {
	var ps []int
	want := s.copiesWanted()
	for p, part := range s.Partitions {
		if len(ps) == limit {
			break
		}
		if lagging(part, want) {
			ps = append(ps, p)
		}
	}
	return ps
}

// copiesWanted is the in-sync copies a partition should have: the
// replica count the active members allow.
func (s *ClusterState) copiesWanted() int {
	return min(s.Replication.Copies(), s.activeCount())
}

func lagging(p Partition, want int) bool { return p.Owner != "" && len(p.InSync) < want }

// ReplicaCounts returns, per member, how many partitions it is the
// primary of and how many more it holds a replica of.
func (s *ClusterState) ReplicaCounts() (primaries, replicas map[string]int) {
	primaries, replicas = map[string]int{}, map[string]int{}
	for _, p := range s.Partitions {
		if p.Owner != "" {
			primaries[p.Owner]++
		}
		for _, m := range p.Replicas {
			if m != p.Owner {
				replicas[m]++
			}
		}
	}
	return primaries, replicas
}

// forgetCopies takes a member that lost its data out of the in-sync sets
// of the partitions it does not own: its copies are gone. (Those it owns
// fail over to an in-sync replica, see the cluster's failover.)
func (s *ClusterState) forgetCopies(name string) {
	for i := range s.Partitions {
		p := &s.Partitions[i]
		if p.Target == name {
			p.Target, p.Since = "", 0 // a move to it is off: it has nothing
		}
		if p.Owner != name && slices.Contains(p.InSync, name) {
			p.InSync = slices.DeleteFunc(slices.Clone(p.InSync), func(m string) bool { return m == name })
			p.Version++
		}
	}
}

// reincarnate records m's new data directory for a member that lost its
// old one, once nothing relies on the old copies: it owns no partition
// and is in no in-sync set. It is then a replica like a new member, and
// is seeded.
func (s *ClusterState) reincarnate(m Member) error {
	old, err := s.member(m.Name)
	if err != nil {
		return err
	}
	if !old.DataLost || m.Incarnation == "" {
		return nil
	}
	for i, p := range s.Partitions {
		if p.Owner == m.Name || p.Target == m.Name || slices.Contains(p.InSync, m.Name) {
			return fmt.Errorf("reincarnate %s: partition %d still relies on its lost copy", m.Name, i)
		}
	}
	old.Incarnation, old.DataLost = m.Incarnation, false
	s.Epoch++
	return nil
}

// Move starts handing Partition to Target, an in-sync replica, if the
// partition is still at Version and ready.
type Move struct {
	Partition int    `json:"partition"`
	Version   uint64 `json:"version"`
	Target    string `json:"target"`
}

// applyMoves starts the moves whose partitions are ready, still at their
// version, and whose targets are active in-sync replicas: a handoff, as a
// join starts one, but the target has the data already.
func (s *ClusterState) applyMoves(ms []Move) error {
	if err := s.checkPartitions("move", len(ms), func(i int) int { return ms[i].Partition }); err != nil {
		return err
	}
	changed := false
	for _, m := range ms {
		p := &s.Partitions[m.Partition]
		mem := s.Members[m.Target]
		if p.Version != m.Version || !p.Ready() || p.Owner == m.Target || !slices.Contains(p.InSync, m.Target) ||
			mem == nil || mem.Status != Active || mem.DataLost {
			continue
		}
		if !changed {
			s.Epoch++
			changed = true
		}
		p.Target, p.Since = m.Target, s.Epoch
	}
	if changed {
		s.placeReplicas()
	}
	return nil
}
