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
	stopOnce sync.Once

	mu      sync.Mutex
	failing map[string]time.Time
}

func watchContact(r *raft.Raft) *contactTracker {
	t := &contactTracker{ch: make(chan raft.Observation, 256), done: make(chan struct{}), failing: map[string]time.Time{}}
	t.obs = raft.NewObserver(t.ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(t.obs)
	go t.run()
	return t
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

// FollowerSilentSince reports, on the leader, whether the heartbeats to
// member id are failing, and when it last answered one.
func (n *RaftNode) FollowerSilentSince(id string) (time.Time, bool) {
	if n.contact == nil {
		return time.Time{}, false
	}
	n.contact.mu.Lock()
	defer n.contact.mu.Unlock()
	at, ok := n.contact.failing[id]
	return at, ok
}
