package logging

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the window of Options.Repeats when Every is zero.
const DefaultEvery = 30 * time.Second

// repeats rate-limits messages about one peer. Safe for concurrent use.
type repeats struct {
	every time.Duration
	now   func() time.Time
	keys  map[string]string // message -> attribute naming the peer

	mu   sync.Mutex
	seen map[seenKey]*seen
}

type seenKey struct{ msg, peer string }

type seen struct {
	warned time.Time // when the last WARN line went out
	count  int       // repeats since, logged at DEBUG
}

func newRepeats(o Options) *repeats {
	if len(o.Repeats) == 0 {
		return nil
	}
	r := &repeats{every: o.Every, now: o.Now, keys: map[string]string{}, seen: map[seenKey]*seen{}}
	if r.every <= 0 {
		r.every = DefaultEvery
	}
	if r.now == nil {
		r.now = time.Now
	}
	for _, rp := range o.Repeats {
		r.keys[rp.Msg] = rp.PeerKey
	}
	return r
}

// level is the level to log msg at: WARN for the first of a window
// (with n, the repeats logged at DEBUG since the last WARN), DEBUG for
// the rest. limited is false, and lvl WARN or above unchanged, for a
// message that is not rate-limited.
func (r *repeats) level(msg string, args []any) (lvl slog.Level, n int, limited bool) {
	key, ok := r.keys[msg]
	if !ok {
		return slog.LevelWarn, 0, false
	}
	peer := ""
	if key != "" {
		if peer, ok = find(args, key); !ok {
			return slog.LevelWarn, 0, false
		}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	k := seenKey{msg, peer}
	s := r.seen[k]
	if s == nil {
		r.prune(now)
		r.seen[k] = &seen{warned: now}
		return slog.LevelWarn, 0, true
	}
	if now.Sub(s.warned) >= r.every {
		n = s.count
		s.warned, s.count = now, 0
		return slog.LevelWarn, n, true
	}
	s.count++
	return slog.LevelDebug, 0, true
}

// prune forgets peers not heard of for two windows, so that a peer
// gone for good does not stay in the map (and one that comes back and
// fails again starts with a WARN).
func (r *repeats) prune(now time.Time) {
	for k, s := range r.seen {
		if now.Sub(s.warned) >= 2*r.every {
			delete(r.seen, k)
		}
	}
}

// find is the value of key in hclog's key-value pairs, as text.
func find(args []any, key string) (string, bool) {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == key {
			return fmt.Sprint(args[i+1]), true
		}
	}
	return "", false
}
