package cluster

import (
	"testing"
	"time"
)

func TestContactGuard(t *testing.T) {
	const lease = 3 * time.Second
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		lc      time.Duration // last contact sampled
		catchUp bool          // a catch-up begins before the sample
		done    bool          // the catch-up begun last ends before the sample
		lapsed  bool          // what observe must report
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"steady contact", []step{{lc: 0}, {lc: time.Second}, {lc: 2 * time.Second}, {lc: 5 * time.Second}}},
		{"a silence of exactly the lease is none", []step{{lc: 0}, {lc: lease}}},
		{"a silence past the lease, even unseen while it lasted", []step{
			{lc: 0}, {lc: 4 * time.Second, lapsed: true}, {lc: 4100 * time.Millisecond, lapsed: true},
		}},
		{"a stale sample changes nothing", []step{{lc: 10 * time.Second}, {lc: time.Second}, {lc: 11 * time.Second}}},
		{"a catch-up clears it", []step{
			{lc: 0}, {lc: 10 * time.Second, lapsed: true}, {lc: 11 * time.Second, catchUp: true, lapsed: true},
			{lc: 12 * time.Second, done: true},
		}},
		{"a catch-up begun before a second silence does not clear it", []step{
			{lc: 0}, {lc: 10 * time.Second, lapsed: true}, {lc: 10 * time.Second, catchUp: true, lapsed: true},
			{lc: 20 * time.Second, lapsed: true}, {lc: 20 * time.Second, done: true, lapsed: true},
			{lc: 21 * time.Second, catchUp: true, lapsed: true}, {lc: 22 * time.Second, done: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g contactGuard
			var gen uint64
			for i, s := range tt.steps {
				if s.catchUp {
					gen = g.pending()
				}
				if s.done {
					g.caughtUp(gen)
				}
				if got := g.observe(at(s.lc), lease); got != s.lapsed {
					t.Fatalf("step %d (%+v): lapsed %v, want %v", i, s, got, s.lapsed)
				}
			}
		})
	}
}
