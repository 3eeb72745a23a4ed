package replication

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dura-dev/dura/internal/testutil"
)

func TestContactTrackerForgetsAMemberAddedAgain(t *testing.T) {
	tr := &contactTracker{ch: make(chan raft.Observation, 8), done: make(chan struct{}), failing: map[string]time.Time{}}
	go tr.run()
	defer close(tr.done)
	failingSince := func(id string) (time.Time, bool) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		at, ok := tr.failing[id]
		return at, ok
	}
	last := time.Now().Add(-time.Minute)
	tr.ch <- raft.Observation{Data: raft.FailedHeartbeatObservation{PeerID: "n3", LastContact: last}}
	testutil.PollTrue(t, 5*time.Second, "n3 failing", func() bool { _, ok := failingSince("n3"); return ok })
	// Removed and added again (a member back with a new data directory):
	// its new replicator never reports a resumption of the old failures.
	tr.ch <- raft.Observation{Data: raft.PeerObservation{Peer: raft.Server{ID: "n3"}}}
	testutil.PollTrue(t, 5*time.Second, "n3 no longer failing", func() bool { _, ok := failingSince("n3"); return !ok })
}
