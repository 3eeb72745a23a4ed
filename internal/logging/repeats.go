package logging

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the window of Options.Repeats when Every is zero.
const DefaultEvery = 30 * time.Second

// Limiter rate-limits a warning that repeats, per key (a peer, an owner):
// the first of each window is WARN, with how many were logged at DEBUG
// since the last WARN, and the rest DEBUG. Safe for concurrent use.
type Limiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*seen
}

type seen struct {
	warned time.Time // when the last WARN line went out
	count  int       // repeats since, logged at DEBUG
}

// NewLimiter rate-limits to one WARN per key per every (DefaultEvery if
// zero); now is the clock (time.Now if nil).
func NewLimiter(every time.Duration, now func() time.Time) *Limiter {
	if every <= 0 {
		every = DefaultEvery
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{every: every, now: now, seen: map[string]*seen{}}
}

// Level is the level to log key's warning at now, and with WARN the
// number of repeats logged at DEBUG since the last WARN.
func (l *Limiter) Level(key string) (slog.Level, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen[key]
	if s == nil {
		l.prune(now)
		l.seen[key] = &seen{warned: now}
		return slog.LevelWarn, 0
	}
	if now.Sub(s.warned) >= l.every {
		n := s.count
		s.warned, s.count = now, 0
		return slog.LevelWarn, n
	}
	s.count++
	return slog.LevelDebug, 0
}

// prune forgets keys not heard of for two windows, so that a peer gone
// for good does not stay in the map (and one that comes back and fails
// again starts with a WARN).
func (l *Limiter) prune(now time.Time) {
	for k, s := range l.seen {
		if now.Sub(s.warned) >= 2*l.every {
			delete(l.seen, k)
		}
	}
}

// repeats rate-limits hclog messages about one peer (Options.Repeats).
type repeats struct {
	keys map[string]string // message -> attribute naming the peer
	lim  *Limiter
}

func newRepeats(o Options) *repeats {
	if len(o.Repeats) == 0 {
		return nil
	}
	r := &repeats{keys: map[string]string{}, lim: NewLimiter(o.Every, o.Now)}
	for _, rp := range o.Repeats {
		r.keys[rp.Msg] = rp.PeerKey
	}
	return r
}

// level is the level to log msg at (see Limiter.Level). limited is
// false, and lvl WARN or above unchanged, for a message that is not
// rate-limited.
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
	lvl, n = r.lim.Level(msg + "\x00" + peer)
	return lvl, n, true
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
