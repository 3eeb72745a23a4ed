package replication

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// transportPair is a leader's transport and a follower's answering each
// append with answer; both close with the test.
func transportPair(t *testing.T, answer func(*raft.AppendEntriesRequest) *raft.AppendEntriesResponse) (leader, follower *raft.NetworkTransport) {
	t.Helper()
	leader, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Close() })
	follower, err = raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follower.Close() })
	go func() {
		for rpc := range follower.Consumer() {
			rpc.Respond(answer(rpc.Command.(*raft.AppendEntriesRequest)), nil)
		}
	}()
	return leader, follower
}

// TestPipelineSendsWhenResponsesAreNotRead reproduces the state Raft
// leaves a pipeline in once its decoder has stopped: nobody reads the
// responses. Sends must go on (and the pipeline close) instead of
// blocking for good, as they do on the bare transport.
func TestPipelineSendsWhenResponsesAreNotRead(t *testing.T) {
	leader, follower := transportPair(t, func(req *raft.AppendEntriesRequest) *raft.AppendEntriesResponse {
		return &raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry + 1, Success: true}
	})

	p, err := pipelinedTransport{NetworkTransport: leader}.AppendEntriesPipeline("f", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	const sends = 20
	sent := make(chan error, 1)
	go func() {
		for i := range sends {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sends blocked while nobody read the responses")
	}
	// The responses come out in the order sent.
	for i := range sends {
		select {
		case f := <-p.Consumer():
			if got := f.Request().PrevLogEntry; got != uint64(i) {
				t.Fatalf("response %d is for request %d", i, got)
			}
			if err := f.Error(); err != nil || !f.Response().Success {
				t.Fatalf("response %d: %v %+v", i, err, f.Response())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("response %d never came", i)
		}
	}
	// Once more unread, then Close must not hang.
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: sends}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
}

// TestTransportNotesAcceptedAppends: an append the follower accepts, sent
// alone or through a pipeline, ends a silence that failing heartbeats
// began; a refused one does not.
func TestTransportNotesAcceptedAppends(t *testing.T) {
	// Term 2 stands for an append the follower refuses.
	leader, follower := transportPair(t, func(req *raft.AppendEntriesRequest) *raft.AppendEntriesResponse {
		return &raft.AppendEntriesResponse{Term: req.Term, Success: req.Term != 2}
	})
	n := &RaftNode{contact: &contactTracker{failing: map[string]time.Time{}}, answers: newAnswers()}
	tr := pipelinedTransport{NetworkTransport: leader, answers: n.answers}
	cutAt := time.Now().Add(-time.Minute)
	n.contact.failing["f"] = cutAt
	silent := func() time.Time {
		at, failing := n.FollowerSilentSince("f")
		if !failing {
			t.Fatal("f no longer failing")
		}
		return at
	}

	if err := tr.AppendEntries("f", follower.LocalAddr(), &raft.AppendEntriesRequest{Term: 2}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	if got := silent(); !got.Equal(cutAt) {
		t.Fatalf("a refused append moved the silence to %v", got)
	}
	before := time.Now()
	if err := tr.AppendEntries("f", follower.LocalAddr(), &raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	if got := silent(); got.Before(before) {
		t.Fatalf("an accepted append left the silence at %v", got)
	}

	n.contact.failing["f"] = cutAt
	n.answers = newAnswers()
	tr.answers = n.answers
	p, err := tr.AppendEntriesPipeline("f", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before = time.Now()
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Consumer():
	case <-time.After(10 * time.Second):
		t.Fatal("no response through the pipeline")
	}
	if got := silent(); got.Before(before) {
		t.Fatalf("an append accepted through the pipeline left the silence at %v", got)
	}
	if _, failing := n.FollowerSilentSince("g"); failing {
		t.Fatal("a follower with no failed heartbeat reported failing")
	}
}
