package replication

import (
	"fmt"
	"slices"
	"sort"

	"github.com/dura-dev/dura/placement"
)

// MemberStatus is a member's place in the cluster's life cycle.
type MemberStatus string

const (
	// Active members own partitions.
	Active MemberStatus = "active"
	// Leaving members are handing their partitions off.
	Leaving MemberStatus = "leaving"
	// Left members have handed everything off.
	Left MemberStatus = "left"
	// Removed members were taken out by an operator; their partitions were
	// reassigned without their data.
	Removed MemberStatus = "removed"
)

// Member is a node as the committed state knows it.
type Member struct {
	Name   string       `json:"name"`
	HTTP   string       `json:"http"`
	Raft   string       `json:"raft"`
	Gossip string       `json:"gossip"`
	Status MemberStatus `json:"status"`
	// Incarnation identifies the data directory whose copies the
	// partitions of this member are: recorded when it first joins, kept
	// when it comes back.
	Incarnation string `json:"incarnation,omitempty"`
	// DataLost is set when the member came back with another data
	// directory (a wiped or replaced disk): its partitions' data is not
	// on it, and it must not serve them. Only a removal clears it.
	DataLost bool `json:"data_lost,omitempty"`
}

// Rejoined is the member record a join of m makes, given the record old
// the state has (nil if none): an active or leaving member keeps the
// incarnation its data belongs to, and one that comes back as another
// incarnation is marked DataLost. A member recorded before incarnations
// existed adopts the one it brings.
func Rejoined(old *Member, m Member) Member {
	m.Status = Active
	m.DataLost = false
	if old == nil || old.Status == Left || old.Status == Removed {
		return m
	}
	m.DataLost = old.DataLost
	switch {
	case old.Incarnation == "":
	case m.Incarnation == "" || m.Incarnation == old.Incarnation:
		m.Incarnation = old.Incarnation
	default:
		m.Incarnation, m.DataLost = old.Incarnation, true
	}
	return m
}

// Partition is the committed placement of one partition. While Target is
// set the partition is moving from Owner to Target and neither serves it;
// it is ready when Target is empty.
type Partition struct {
	Owner  string `json:"owner"`
	Target string `json:"target,omitempty"`
	// Since is the epoch at which the current Target was set; a handoff
	// report must name it, so a pull that began before the move was
	// cancelled and restarted cannot complete the newer one.
	Since uint64 `json:"since,omitempty"`
	// Replicas are the members holding a copy, the owner (primary) first;
	// InSync are those known to hold every acknowledged write: only they
	// may be promoted, and a write is acknowledged once all of them have
	// it. Version counts changes of either, for compare-and-set. The
	// slices are replaced, never changed in place (Clone shares them).
	Replicas []string `json:"replicas,omitempty"`
	InSync   []string `json:"in_sync,omitempty"`
	Version  uint64   `json:"version,omitempty"`
	// Home is the member the ring gave the partition at the last member
	// change. With copies, a partition whose owner is not its home has
	// its home among its replicas until the primary moves there.
	Home string `json:"home,omitempty"`
}

// Ready reports whether the partition may be served by its owner.
func (p Partition) Ready() bool { return p.Owner != "" && p.Target == "" }

// Assigner maps partitions to member names; it must depend only on the set
// of names and the parameters. placement.Assign is the one Dura uses. It
// returns an error, never panics, when the ring cannot place the members;
// the member change is then refused.
type Assigner func(members []string, p placement.RingConfig) ([]string, error)

// ClusterState is the replicated state of the cluster: members, ring epoch
// and partition placement. Its methods apply commands; they are
// deterministic so every replica reaches the same state.
type ClusterState struct {
	Ring        placement.RingConfig `json:"ring"`
	Replication Replication          `json:"replication"`
	Epoch       uint64               `json:"epoch"`
	Members     map[string]*Member   `json:"members"`
	Partitions  []Partition          `json:"partitions"`
}

// Command kinds.
const (
	CmdBootstrap   = "bootstrap"
	CmdJoin        = "join"
	CmdLeave       = "leave"
	CmdHandoffDone = "handoff_done"
	CmdRemove      = "remove"
	// CmdInSync adds members to or removes them from partitions' in-sync
	// sets, each change only if the partition's version is the one named.
	CmdInSync = "in_sync"
	// CmdPromote makes in-sync replicas the primaries of partitions whose
	// primary is gone (failover), each only at the version named.
	CmdPromote = "promote"
	// CmdReincarnate lets a member that came back without its data take
	// the data directory it brought, once no partition relies on its old
	// copies (replication moved them elsewhere).
	CmdReincarnate = "reincarnate"
	// CmdMove hands partitions to in-sync replicas that the ring prefers
	// as their primaries (back to a node that returned after a failover).
	CmdMove = "move"
	// Alarm commands change the replicated schedule (see clusterFSM).
	CmdPutAlarm    = "put_alarm"
	CmdDeleteAlarm = "delete_alarm"
)

// Command is one change to the cluster state, as written to the Raft log.
type Command struct {
	Kind string               `json:"kind"`
	Ring placement.RingConfig `json:"ring,omitempty"`
	// Replication, on bootstrap, is the new cluster's replica count.
	Replication Replication `json:"replication,omitempty"`
	// InSync, on in_sync, are the replica-set changes to make.
	InSync []InSyncChange `json:"in_sync,omitempty"`
	// Promote, on promote, are the failovers to make.
	Promote []Promotion `json:"promote,omitempty"`
	// Moves, on move, are the primary moves to start.
	Moves     []Move `json:"moves,omitempty"`
	Member    Member `json:"member,omitempty"`
	Name      string `json:"name,omitempty"`
	Partition int    `json:"partition,omitempty"`
	// Epoch, on handoff_done, is the epoch the handoff was started at; a
	// report from an older epoch is ignored.
	Epoch uint64 `json:"epoch,omitempty"`
	// FromCopy, on handoff_done, says the new owner serves its own
	// replica copy (the old owner only drained): the handoff holds only
	// while that copy is still in sync, since the old owner may have
	// acknowledged writes without it meanwhile.
	FromCopy bool `json:"from_copy,omitempty"`
	// Keep, on handoff_done from a copy, are the other in-sync replicas
	// the old owner vouched for as it drained: they hold exactly the
	// records the new owner holds, so they stay in the set and follow
	// the new owner's records without being seeded again.
	Keep []string `json:"keep,omitempty"`
	// Alarm is the alarm of put_alarm.
	Alarm *Alarm `json:"alarm,omitempty"`
	// ObjectID names the object whose alarm delete_alarm removes. Entries
	// written before it existed carry the ID in Name, which is still read.
	ObjectID string `json:"object_id,omitempty"`
	// Fired, on delete_alarm, clears many alarms that ran, each only if
	// it is still the one that ran (same time): an alarm set again since
	// stays. Versions before it ignore the field and clear nothing, which
	// can only make such alarms run again.
	Fired []FiredAlarm `json:"fired,omitempty"`
	// Module is the module of put_module (modules.go).
	Module *Module `json:"module,omitempty"`
	// Hops counts how often a node passed the command on towards the
	// leader (at most once); the state machine ignores it.
	Hops int `json:"hops,omitempty"`
}

// Apply changes the state by c, or returns why it cannot (the state is
// then unchanged).
func (s *ClusterState) Apply(c Command, assign Assigner) error {
	switch c.Kind {
	case CmdBootstrap:
		if s.Epoch != 0 {
			return fmt.Errorf("cluster already bootstrapped at epoch %d", s.Epoch)
		}
		if c.Ring.Partitions <= 0 {
			return fmt.Errorf("bootstrap: %d partitions", c.Ring.Partitions)
		}
		if err := c.Replication.Validate(); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		s.Ring = c.Ring
		s.Replication = c.Replication
		s.Epoch = 1
		s.Members = map[string]*Member{}
		s.Partitions = make([]Partition, c.Ring.Partitions)
		return nil
	case CmdJoin:
		if err := s.bootstrapped(); err != nil {
			return err
		}
		if c.Member.Name == "" {
			return fmt.Errorf("join: member without a name")
		}
		old := s.Members[c.Member.Name]
		m := Rejoined(old, c.Member)
		if old != nil && *old == m {
			return nil // a repeated join changes nothing
		}
		s.Members[m.Name] = &m
		if m.DataLost && (old == nil || !old.DataLost) {
			s.forgetCopies(m.Name)
		}
		if err := s.rebalance(assign); err != nil {
			return fmt.Errorf("join %s: %w", m.Name, err)
		}
		return nil
	case CmdLeave:
		m, err := s.member(c.Name)
		if err != nil {
			return err
		}
		if m.Status != Active {
			return nil
		}
		if s.activeCount() == 1 {
			return fmt.Errorf("leave: %s is the last active member", c.Name)
		}
		m.Status = Leaving
		if err := s.rebalance(assign); err != nil {
			return fmt.Errorf("leave %s: %w", c.Name, err)
		}
		return nil
	case CmdHandoffDone:
		if c.Partition < 0 || c.Partition >= len(s.Partitions) {
			return fmt.Errorf("handoff_done: no partition %d", c.Partition)
		}
		p := &s.Partitions[c.Partition]
		if p.Target == "" || p.Target != c.Name {
			return fmt.Errorf("handoff_done: partition %d is not moving to %s", c.Partition, c.Name)
		}
		if c.Epoch != p.Since {
			return fmt.Errorf("handoff_done: partition %d: the move of epoch %d was replaced by the one of epoch %d", c.Partition, c.Epoch, p.Since)
		}
		if c.FromCopy && !slices.Contains(p.InSync, c.Name) {
			return fmt.Errorf("handoff_done: partition %d: %s left the in-sync set during the move, its copy may lack acknowledged writes", c.Partition, c.Name)
		}
		// The new owner's copy is the old owner's files (or its own
		// copy of them), which the old owner drops. The other replicas
		// followed the old owner's stream: those it vouched for (Keep)
		// stay in the set, the others are seeded again before they count.
		var kept []string
		if c.FromCopy {
			for _, m := range c.Keep {
				if m != p.Owner && m != p.Target && slices.Contains(p.InSync, m) && !slices.Contains(kept, m) {
					kept = append(kept, m)
				}
			}
		}
		p.Owner, p.Target, p.Since = p.Target, "", 0
		p.InSync = append([]string{p.Owner}, kept...)
		p.Version++
		s.Epoch++
		s.placeReplicas()
		s.retireLeavers()
		return nil
	case CmdInSync:
		return s.applyInSync(c.InSync)
	case CmdPromote:
		return s.applyPromote(c.Promote)
	case CmdReincarnate:
		return s.reincarnate(c.Member)
	case CmdMove:
		return s.applyMoves(c.Moves)
	case CmdRemove:
		return s.remove(c.Name, assign)
	}
	return fmt.Errorf("unknown command %q", c.Kind)
}

// remove takes a member out for good (an operator's forced removal, or
// a member dead past the timeout).
func (s *ClusterState) remove(name string, assign Assigner) error {
	m, err := s.member(name)
	if err != nil {
		return err
	}
	if m.Status == Removed || m.Status == Left {
		return nil
	}
	if m.Status == Active && s.activeCount() == 1 {
		return fmt.Errorf("remove: %s is the last active member", name)
	}
	m.Status = Removed
	// What only the removed node held is lost: each of its partitions
	// goes to an in-sync replica with its data, or, without one, to its
	// new owner ready and empty.
	for i := range s.Partitions {
		p := &s.Partitions[i]
		if p.Target == name {
			p.Target, p.Since = "", 0
		}
	}
	s.promoteReplicas(name)
	if err := s.rebalance(assign); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

func (s *ClusterState) bootstrapped() error {
	if s.Epoch == 0 {
		return fmt.Errorf("cluster not bootstrapped")
	}
	return nil
}

func (s *ClusterState) member(name string) (*Member, error) {
	if err := s.bootstrapped(); err != nil {
		return nil, err
	}
	m := s.Members[name]
	if m == nil {
		return nil, fmt.Errorf("no member %q", name)
	}
	return m, nil
}

func (s *ClusterState) activeCount() int {
	n := 0
	for _, m := range s.Members {
		if m.Status == Active {
			n++
		}
	}
	return n
}

// ActiveMembers are the names of the active members, sorted.
func (s *ClusterState) ActiveMembers() []string {
	var out []string
	for name, m := range s.Members {
		if m.Status == Active {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// rebalance bumps the epoch and points every partition at the owner the
// ring now gives it (its Home): unowned partitions are taken at once. An
// owned one, with one copy, starts a handoff (or cancels one that is no
// longer wanted): the partition is unavailable while its files move.
// With copies, the new home first joins the replica set and is seeded
// while the owner keeps serving (placeReplicas), and the leader moves the
// primary once it is in sync: only a drain and a switch. If the ring
// cannot place the active members it returns why, and the caller's
// command is refused (ClusterState.Apply runs on a copy).
func (s *ClusterState) rebalance(assign Assigner) error {
	s.Epoch++
	want, err := assign(s.ActiveMembers(), s.Ring)
	if err != nil {
		return err
	}
	if want == nil {
		return nil
	}
	if len(want) != len(s.Partitions) {
		return fmt.Errorf("placement of %d partitions for a ring of %d", len(want), len(s.Partitions))
	}
	copies := s.Replication.Copies() >= 2
	for i := range s.Partitions {
		p := &s.Partitions[i]
		p.Home = want[i]
		switch {
		case p.Owner == "":
			p.Owner, p.Target, p.Since = want[i], "", 0
		case p.Owner == want[i]:
			p.Target, p.Since = "", 0
		case copies:
			if p.Target != want[i] {
				p.Target, p.Since = "", 0 // a move elsewhere is no longer wanted
			}
		case p.Target != want[i]:
			p.Target, p.Since = want[i], s.Epoch
		}
	}
	s.placeReplicas()
	s.retireLeavers()
	return nil
}

// retireLeavers marks leaving members that own nothing any more as left.
func (s *ClusterState) retireLeavers() {
	for name, m := range s.Members {
		if m.Status != Leaving {
			continue
		}
		owns := false
		for _, p := range s.Partitions {
			if p.Owner == name || p.Target == name {
				owns = true
				break
			}
		}
		if !owns {
			m.Status = Left
		}
	}
}

// Counts returns how many partitions each member owns.
func (s *ClusterState) Counts() map[string]int {
	out := map[string]int{}
	for _, p := range s.Partitions {
		if p.Owner != "" {
			out[p.Owner]++
		}
	}
	return out
}

// Clone is a deep copy, for readers outside the FSM's lock and for the
// FSM, which applies each command to a copy. It copies field by field: a
// JSON round trip took 41 ms at 65 521 partitions and 1 000 members, a
// copy 3 ms.
func (s *ClusterState) Clone() *ClusterState {
	out := &ClusterState{Ring: s.Ring, Replication: s.Replication, Epoch: s.Epoch, Partitions: slices.Clone(s.Partitions)}
	if s.Members != nil {
		out.Members = make(map[string]*Member, len(s.Members))
		for name, m := range s.Members {
			c := *m
			out.Members[name] = &c
		}
	}
	return out
}
