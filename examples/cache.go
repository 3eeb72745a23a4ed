package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/objectstore"
)

// cacheSchema is the guide's TTL cache with a grace period. Beyond the
// guide's columns it keeps each entry's ttl and grace length, so a
// background refresh can re-stamp the entry as it was first written, and
// counts the refreshes.
//
// Two timestamps, two indexes: expires_at decides what a plain read sees
// (idx_cache_expires serves the count of fresh entries), grace_period_ends
// decides when the row may be deleted (idx_cache_grace serves the alarm).
const cacheSchema = `
CREATE TABLE IF NOT EXISTS cache (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	grace_period_ends INTEGER NOT NULL,
	ttl_ms INTEGER NOT NULL,
	grace_ms INTEGER NOT NULL,
	refreshes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_cache_expires ON cache(expires_at);
CREATE INDEX IF NOT EXISTS idx_cache_grace ON cache(grace_period_ends)`

// Cache limits and defaults, in seconds unless named otherwise.
const (
	cacheDefaultTTL   = 3600
	cacheDefaultGrace = 300
	cacheMaxSeconds   = 10 * 365 * 24 * 3600
	cacheMaxValue     = 1 << 20 // bytes
	// cacheSweepBatch bounds the rows one alarm deletes, so a huge backlog
	// of expired entries is cleared by several short events instead of one
	// long one that would hold the object.
	cacheSweepBatch = 1000
)

// Refresher produces a new value for an entry that was read stale (expired
// but inside its grace period). It runs in a background event after the
// stale answer was sent. Without one (the stock binary's cache has none)
// nothing refreshes an entry but a new PUT: a stale read serves the value
// and leaves it stale, since nobody vouched for it again.
type Refresher func(ctx context.Context, key string, stale json.RawMessage) (json.RawMessage, error)

// Cache is a key-value cache of JSON values with a time to live.
//
//	PUT    /{key}?ttl=S&grace=S  body: any JSON  -> {"key","expires_at","grace_period_ends"}
//	GET    /{key}                -> the stored JSON, or 404 once expired
//	GET    /{key}?grace=1        -> the JSON even if expired, while in its grace period
//	DELETE /{key}                -> {"deleted":bool}
//	GET    /                     -> {"entries":n,"fresh":n}
//
// An entry is visible to plain reads until expires_at and kept until
// grace_period_ends (= expires_at + grace, grace defaults to 300 s and may
// be 0). The alarm is always armed for the earliest grace_period_ends and
// deletes every row past it, so no row outlives its grace period by more
// than the alarm's latency; with grace=0 that bound applies to expiry itself.
//
// With a Refresher, a grace read that served an expired value (X-Cache:
// STALE) schedules a refresh with WaitUntil: the Refresher's value is
// stored with expires_at = now + its ttl (and its grace after that) and its
// refreshes count goes up by one. A refresh is best effort: if it fails (or
// never runs, say because the node stopped) the entry stays stale and the
// next grace read schedules another. Without a Refresher the entry stays
// stale until a PUT or the end of its grace period.
type Cache struct {
	st      *node.State
	refresh Refresher
	r       *router
}

// NewCache returns the constructor of class "cache"; refresh may be nil.
func NewCache(refresh Refresher) node.Constructor {
	return func(st *node.State) (node.Object, error) {
		c := &Cache{st: st, refresh: refresh, r: newRouter()}
		err := st.BlockConcurrencyWhile(func() error {
			if _, err := st.Storage().Exec(cacheSchema); err != nil {
				return err
			}
			// Rows written over /v1 SQL (or before a crash between commit
			// and alarm) would otherwise never be swept.
			return c.armSweep(-1)
		})
		if err != nil {
			return nil, fmt.Errorf("cache schema: %w", err)
		}
		c.r.handle("GET /{$}", c.stats)
		c.r.handle("PUT /{key}", c.put)
		c.r.handle("GET /{key}", c.get)
		c.r.handle("DELETE /{key}", c.del)
		return c, nil
	}
}

// Fetch implements node.Object.
func (c *Cache) Fetch(w http.ResponseWriter, r *http.Request) error { return c.r.serve(w, r) }

type cachePut struct {
	Key             string `json:"key"`
	ExpiresAt       int64  `json:"expires_at"`
	GracePeriodEnds int64  `json:"grace_period_ends"`
}

func (c *Cache) put(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	q := r.URL.Query()
	ttl, err := queryInt(q, "ttl", cacheDefaultTTL, 1, cacheMaxSeconds)
	if err != nil {
		return err
	}
	grace, err := queryInt(q, "grace", cacheDefaultGrace, 0, cacheMaxSeconds)
	if err != nil {
		return err
	}
	body, err := readBody(r, cacheMaxValue)
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return fmt.Errorf("%w: the cached value must be valid JSON", node.ErrBadRequest)
	}
	ttlMS, graceMS := ttl*1000, grace*1000
	expires := c.st.Now().UnixMilli() + ttlMS
	_, err = c.st.Storage().Exec(`
		INSERT INTO cache (key, value, expires_at, grace_period_ends, ttl_ms, grace_ms, refreshes)
		VALUES (?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT(key) DO UPDATE SET
			value = excluded.value, expires_at = excluded.expires_at,
			grace_period_ends = excluded.grace_period_ends,
			ttl_ms = excluded.ttl_ms, grace_ms = excluded.grace_ms, refreshes = 0`,
		key, string(body), expires, expires+graceMS, ttlMS, graceMS)
	if err != nil {
		return err
	}
	if err := c.armSweep(expires + graceMS); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cachePut{Key: key, ExpiresAt: expires, GracePeriodEnds: expires + graceMS})
}

func (c *Cache) get(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	allowGrace, err := queryBool(r.URL.Query(), "grace")
	if err != nil {
		return err
	}
	now := c.st.Now().UnixMilli()
	var cur *objectstore.Cursor
	if allowGrace {
		cur, err = c.st.Storage().Exec(`
			SELECT value, expires_at <= ? FROM cache WHERE key = ? AND grace_period_ends > ?`, now, key, now)
	} else {
		cur, err = c.st.Storage().Exec(`
			SELECT value, 0 FROM cache WHERE key = ? AND expires_at > ?`, key, now)
	}
	if err != nil {
		return err
	}
	if !cur.Next() {
		return fmt.Errorf("%w: no cached value for %q", node.ErrNotFound, key)
	}
	var value string
	var stale bool
	if err := cur.Scan(&value, &stale); err != nil {
		return err
	}
	status := "HIT"
	if stale {
		status = "STALE"
		// The refresh is its own event, after this answer is released:
		// the reader gets the stale value now instead of waiting for it.
		// Only a new value makes the entry fresh: reading it must not.
		if c.refresh != nil {
			c.st.WaitUntil(func(ctx context.Context) error { return c.refreshEntry(ctx, key) })
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Cache", status)
	_, err = w.Write([]byte(value))
	return err
}

// refreshEntry stores the Refresher's new value for an entry read stale.
// Two stale reads may schedule two refreshes; the second finds the entry
// fresh again and does nothing.
func (c *Cache) refreshEntry(ctx context.Context, key string) error {
	s := c.st.Storage()
	now := c.st.Now().UnixMilli()
	cur, err := s.Exec(`
		SELECT value, ttl_ms, grace_ms FROM cache
		WHERE key = ? AND expires_at <= ? AND grace_period_ends > ?`, key, now, now)
	if err != nil || !cur.Next() {
		return err // gone, rewritten or refreshed already
	}
	var value string
	var ttlMS, graceMS int64
	if err := cur.Scan(&value, &ttlMS, &graceMS); err != nil {
		return err
	}
	fresh, err := c.refresh(ctx, key, json.RawMessage(value))
	if err != nil {
		return fmt.Errorf("refresh cache key %q: %w", key, err)
	}
	if !json.Valid(fresh) {
		return fmt.Errorf("refresh cache key %q: refresher returned invalid JSON", key)
	}
	value = string(fresh)
	expires := now + ttlMS
	_, err = s.Exec(`
		UPDATE cache SET value = ?, expires_at = ?, grace_period_ends = ?, refreshes = refreshes + 1
		WHERE key = ?`, value, expires, expires+graceMS, key)
	if err != nil {
		return err
	}
	return c.armSweep(expires + graceMS)
}

func (c *Cache) del(w http.ResponseWriter, r *http.Request) error {
	cur, err := c.st.Storage().Exec(`DELETE FROM cache WHERE key = ?`, r.PathValue("key"))
	if err != nil {
		return err
	}
	// The alarm may now point at a time with nothing to delete; it will
	// find nothing, re-arm for the next entry and cost one idle event.
	return writeJSON(w, http.StatusOK, map[string]bool{"deleted": cur.Changes() > 0})
}

func (c *Cache) stats(w http.ResponseWriter, r *http.Request) error {
	cur, err := c.st.Storage().Exec(`
		SELECT (SELECT COUNT(*) FROM cache), (SELECT COUNT(*) FROM cache WHERE expires_at > ?)`,
		c.st.Now().UnixMilli())
	if err != nil {
		return err
	}
	var entries, fresh int64
	if err := cur.ScanOne(&entries, &fresh); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int64{"entries": entries, "fresh": fresh})
}

// Alarm deletes the rows past their grace period, at most cacheSweepBatch
// of them, and re-arms for the earliest one left (at once if the batch
// did not clear the backlog). With no rows left the runtime clears the
// alarm, so an empty cache costs nothing.
func (c *Cache) Alarm(ctx context.Context, info node.AlarmInfo) error {
	s := c.st.Storage()
	cur, err := s.Exec(`
		DELETE FROM cache WHERE key IN (
			SELECT key FROM cache WHERE grace_period_ends <= ?
			ORDER BY grace_period_ends LIMIT ?)`, c.st.Now().UnixMilli(), cacheSweepBatch)
	if err != nil {
		return err
	}
	c.st.Logger().Debug("cache sweep", "deleted", cur.Changes(), "retry", info.RetryCount)
	return c.armSweep(-1)
}

// armSweep makes sure the alarm fires by the time the next row may be
// deleted. With at >= 0 that time is at, the grace end of a row just
// written, and the alarm only ever moves earlier: a later alarm would let
// this row outlive its grace period. With at < 0 the time is read from
// the table, for the alarm handler (which must re-arm: a delivered alarm
// is cleared) and the constructor.
func (c *Cache) armSweep(at int64) error {
	s := c.st.Storage()
	cur, ok, err := s.GetAlarm()
	if err != nil {
		return err
	}
	if at < 0 {
		if ok {
			return nil // already armed; it re-arms itself when it fires
		}
		rows, err := s.Exec(`SELECT MIN(grace_period_ends) FROM cache`)
		if err != nil {
			return err
		}
		var next any
		if err := rows.ScanOne(&next); err != nil {
			return err
		}
		n, isInt := next.(int64)
		if !isInt {
			return nil // empty table: nothing to sweep
		}
		at = n
	} else if ok && cur.UnixMilli() <= at {
		return nil
	}
	return s.SetAlarm(time.UnixMilli(at))
}
