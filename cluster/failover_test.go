package cluster

import (
	"strings"
	"testing"
	"time"
)

// TestPrimaryGone: when the leader may promote another primary in place
// of one; wait is the lease and a quarter.
func TestPrimaryGone(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	const wait = 2500 * time.Millisecond
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	leading := ago(time.Minute)
	for _, tc := range []struct {
		name string
		f    contactFacts
		want string // a prefix of the reason; "" not gone
	}{
		{"healthy", contactFacts{leaderSince: leading, heard: ago(50 * time.Millisecond)}, ""},
		{"lost its data, even for a new leader", contactFacts{dataLost: true, leaderSince: ago(0)}, "lost its data"},
		{"new leader waits the lease out first", contactFacts{leaderSince: ago(time.Second), failing: true, silentSince: ago(time.Minute)}, ""},
		{"heartbeats failing past the wait", contactFacts{leaderSince: leading, failing: true, silentSince: ago(3 * time.Second)}, "no Raft heartbeat answered for 3s"},
		{"heartbeats failing within the wait", contactFacts{leaderSince: leading, failing: true, silentSince: ago(2 * time.Second), dead: true, deadSince: ago(time.Minute)}, ""},
		// The full chaos run's split: gossip still said dead seconds after
		// the cut healed, while the primary answered heartbeats and served.
		{"dead in gossip but answering heartbeats", contactFacts{leaderSince: leading, heard: ago(100 * time.Millisecond), dead: true, deadSince: ago(6 * time.Second)}, ""},
		{"dead in gossip, silent", contactFacts{leaderSince: leading, heard: ago(10 * time.Second), dead: true, deadSince: ago(6 * time.Second)}, "dead in gossip for 6s"},
		{"dead in gossip, never heard", contactFacts{leaderSince: leading, dead: true, deadSince: ago(6 * time.Second)}, "dead in gossip"},
		{"dead in gossip only just", contactFacts{leaderSince: leading, dead: true, deadSince: ago(time.Second)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.f.gone(now, wait)
			if (got == "") != (tc.want == "") || !strings.HasPrefix(got, tc.want) {
				t.Fatalf("gone = %q, want %q", got, tc.want)
			}
		})
	}
}
