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

// A leader's contact is when a quorum last confirmed it leads, not the
// time it is asked: one cut off from its followers (or stopped a while)
// must not count as in touch until Raft notices it no longer leads.
func TestLeaderContactNeedsAQuorum(t *testing.T) {
	dir := t.TempDir()
	a := startRaft(t, dir, "a")
	if err := a.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 10*time.Second, "a leads", a.IsLeader)
	// Alone, it is its own quorum: confirmed within a few rounds.
	testutil.PollTrue(t, 10*time.Second, "a confirmed", func() bool { return time.Since(a.LastContact()) < time.Second })
	b := startRaft(t, dir, "b")
	c := startRaft(t, dir, "c")
	for _, n := range []*RaftNode{b, c} {
		if err := a.AddServer(n.cfg.NodeID, n.Addr(), true); err != nil {
			t.Fatal(err)
		}
	}
	testutil.PollTrue(t, 10*time.Second, "a confirmed by its followers", func() bool {
		return a.IsLeader() && a.LastContact().After(time.Now().Add(-100*time.Millisecond))
	})
	b.Close()
	c.Close()
	cut := time.Now()
	// Until it steps down (a leader lease or more), it still believes it
	// leads; its contact must not move past the cut meanwhile.
	for a.IsLeader() {
		if lc := a.LastContact(); lc.After(cut) {
			t.Fatalf("contact %s after the followers were gone", lc.Sub(cut))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
