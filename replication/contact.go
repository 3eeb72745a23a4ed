package replication

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// contactTracker keeps, on the leader, when each follower whose
// heartbeats fail last answered: the failover of a primary waits until
// its lease, counted from then, has run out.
type contactTracker struct {
	obs      *raft.Observer
	ch       chan raft.Observation
	done     chan struct{}
	kick     chan struct{} // a new term: confirm at once
	stopOnce sync.Once

	mu       sync.Mutex
	failing  map[string]time.Time
	verified time.Time // when the latest round that confirmed this node leads began
}

// watchContact follows r's heartbeats and, while r leads, confirms every
// verifyEvery that a quorum still follows it.
func watchContact(r *raft.Raft, verifyEvery time.Duration) *contactTracker {
	t := &contactTracker{ch: make(chan raft.Observation, 256), done: make(chan struct{}), kick: make(chan struct{}, 1), failing: map[string]time.Time{}}
	t.obs = raft.NewObserver(t.ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(t.obs)
	go t.run()
	go t.confirm(r, verifyEvery)
	return t
}

// confirm asks a quorum, while r leads, whether it still does. The
// leader's contact is when the latest round it won began, not "now":
// a leader stopped for a while (a pause, a stalled disk) that resumes
// still believing it leads must not count as in touch, while a new
// leader elected meanwhile may have given its partitions away.
func (t *contactTracker) confirm(r *raft.Raft, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		case <-t.kick:
		}
		if r.State() != raft.Leader {
			continue
		}
		start := time.Now()
		if r.VerifyLeader().Error() == nil {
			t.mu.Lock()
			t.verified = start // rounds run one at a time: each starts later
			t.mu.Unlock()
		}
	}
}

// verifiedAt is when the latest round confirming this node leads began.
func (t *contactTracker) verifiedAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.verified
}

func (t *contactTracker) run() {
	for {
		select {
		case <-t.done:
			return
		case o := <-t.ch:
			t.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				t.failing[string(d.PeerID)] = d.LastContact
			case raft.ResumedHeartbeatObservation:
				delete(t.failing, string(d.PeerID))
			case raft.LeaderObservation:
				// A new term: the new leader's heartbeats say anew.
				clear(t.failing)
				select {
				case t.kick <- struct{}{}:
				default:
				}
			case raft.PeerObservation:
				// Removed, or added again (a member back as a new
				// incarnation): replication to it starts afresh, and a
				// new replicator reports no resumption of the old one's
				// failures.
				delete(t.failing, string(d.Peer.ID))
			}
			t.mu.Unlock()
		}
	}
}

func (t *contactTracker) stop(r *raft.Raft) {
	t.stopOnce.Do(func() {
		r.DeregisterObserver(t.obs)
		close(t.done)
	})
}

// answers keeps when each follower last accepted an append from this
// node (the transport notes them). Once a follower's heartbeats fail,
// Raft reports nothing more until one succeeds, and a heartbeat can hang
// in a connection broken by a network cut for the transport's whole
// timeout after the cut healed, while the follower accepts appends on
// another connection and so knows itself in touch: the silence then ends
// at its latest accepted append, not at the failure Raft reported.
type answers struct {
	mu sync.Mutex
	at map[raft.ServerID]time.Time
}

func newAnswers() *answers { return &answers{at: map[raft.ServerID]time.Time{}} }

func (a *answers) heard(id raft.ServerID) {
	if a == nil {
		return
	}
	now := time.Now()
	a.mu.Lock()
	a.at[id] = now
	a.mu.Unlock()
}

func (a *answers) last(id raft.ServerID) time.Time {
	if a == nil {
		return time.Time{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at[id]
}

// FollowerHeardAt is when member id last accepted an append (a heartbeat
// among them) from this node; zero if never.
func (n *RaftNode) FollowerHeardAt(id string) time.Time {
	return n.answers.last(raft.ServerID(id))
}

// FollowerSilentSince reports, on the leader, whether the heartbeats to
// member id are failing, and when it last answered one.
func (n *RaftNode) FollowerSilentSince(id string) (time.Time, bool) {
	if n.contact == nil {
		return time.Time{}, false
	}
	n.contact.mu.Lock()
	at, ok := n.contact.failing[id]
	n.contact.mu.Unlock()
	if !ok {
		return time.Time{}, false
	}
	if heard := n.answers.last(raft.ServerID(id)); heard.After(at) {
		at = heard
	}
	return at, true
}
