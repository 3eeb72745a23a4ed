package logging

import (
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// RaftOptions names the adapter "raft" and rate-limits the messages
// hashicorp/raft (v1.8) repeats for a peer it cannot reach: every
// heartbeat and replication attempt (about every 0.6 s with the default
// timeouts) logs one while the peer is down, which is expected and heals
// by itself once it is back.
func RaftOptions() Options {
	return Options{Name: "raft", Repeats: []Repeat{
		{"failed to heartbeat to", "peer"},
		{"failed to appendEntries to", "peer"},
		{"failed to start pipeline replication to", "peer"},
		{"failed to pipeline appendEntries", "peer"},
		{"failed to send snapshot to", "peer"},
		{"appendEntries rejected, sending older logs", "peer"},
		{"failed to contact", "server-id"},
		{"failed to make requestVote RPC", "target"},
		// A node that lost its peers, or one back from a partition,
		// retries these until the cluster heals.
		{"Election timeout reached, restarting election", ""},
		{"rejecting vote request since we have a leader", "from"},
		{"rejecting pre-vote request since we have a leader", "from"},
	}, Levels: map[string]hclog.Level{
		// An election is a state change for the timeline, not a fault:
		// every cluster's first start has one.
		"heartbeat timeout reached, starting election": hclog.Info,
	}}
}

// Raft is the hclog.Logger for hashicorp/raft over l.
func Raft(l *slog.Logger) hclog.Logger { return NewHclog(l, RaftOptions()) }
