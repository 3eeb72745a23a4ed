package examples_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
)

type cachePut struct {
	Key             string `json:"key"`
	ExpiresAt       int64  `json:"expires_at"`
	GracePeriodEnds int64  `json:"grace_period_ends"`
}

func TestCachePutGet(t *testing.T) {
	n := newNode(t)
	value := `{"a": [1, 2, {"b": null}],  "c": "ü"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"invalid JSON", "PUT", "/k?ttl=60", `{"a":`, 400, "BAD_REQUEST"},
		{"empty body", "PUT", "/k?ttl=60", "", 400, "BAD_REQUEST"},
		{"ttl zero", "PUT", "/k?ttl=0", `1`, 400, "BAD_REQUEST"},
		{"ttl not an integer", "PUT", "/k?ttl=1.5", `1`, 400, "BAD_REQUEST"},
		{"negative grace", "PUT", "/k?grace=-1", `1`, 400, "BAD_REQUEST"},
		{"missing key", "GET", "/k", nil, 404, "NOT_FOUND"},
		{"store", "PUT", "/k?ttl=60", value, 200, ""},
		{"store with default ttl", "PUT", "/d", `"x"`, 200, ""},
		{"grace flag not a boolean", "GET", "/k?grace=maybe", nil, 400, "BAD_REQUEST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.code != "" {
				n.callErr(c.method, "cache", "c1", c.path, c.body, c.status, c.code)
				return
			}
			n.call(c.method, "cache", "c1", c.path, c.body, c.status, nil)
		})
	}

	t.Run("value comes back verbatim", func(t *testing.T) {
		r := n.call("GET", "cache", "c1", "/k", nil, 200, nil)
		if string(r.body) != value {
			t.Fatalf("got %q, want %q", r.body, value)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if x := r.header.Get("X-Cache"); x != "HIT" {
			t.Fatalf("X-Cache %q", x)
		}
	})
	t.Run("default ttl is an hour", func(t *testing.T) {
		ttl := n.sqlInt("cache", "c1", `SELECT ttl_ms FROM cache WHERE key = 'd'`)
		grace := n.sqlInt("cache", "c1", `SELECT grace_period_ends - expires_at FROM cache WHERE key = 'd'`)
		if ttl != 3600_000 || grace != 300_000 {
			t.Fatalf("ttl %d ms, grace %d ms", ttl, grace)
		}
	})
	t.Run("delete", func(t *testing.T) {
		var got map[string]bool
		n.call("DELETE", "cache", "c1", "/k", nil, 200, &got)
		if !got["deleted"] {
			t.Fatal("not deleted")
		}
		n.callErr("GET", "cache", "c1", "/k", nil, 404, "NOT_FOUND")
	})
	n.noAdviceWarnings("cache", "c1")
}

// TestCacheExpiry checks that an expired entry stops being served and its
// row is deleted by the alarm within 2 s of its expiry, and that the alarm
// then re-arms for the next entry.
func TestCacheExpiry(t *testing.T) {
	n := newNode(t)
	var short, long cachePut
	n.call("PUT", "cache", "exp", "/long?ttl=3600&grace=0", `"l"`, 200, &long)
	if a := n.alarm("cache", "exp"); a == nil || *a != long.GracePeriodEnds {
		t.Fatalf("alarm %v, want %d", a, long.GracePeriodEnds)
	}
	// An earlier expiry must pull the alarm in.
	n.call("PUT", "cache", "exp", "/short?ttl=1&grace=0", `{"v":1}`, 200, &short)
	if a := n.alarm("cache", "exp"); a == nil || *a != short.ExpiresAt {
		t.Fatalf("alarm %v, want %d (the short entry's expiry)", a, short.ExpiresAt)
	}
	n.call("GET", "cache", "exp", "/short", nil, 200, nil)

	expiry := time.UnixMilli(short.ExpiresAt)
	testutil.PollTrue(t, time.Until(expiry)+2*time.Second, "row deleted within 2 s of expiry", func() bool {
		return n.sqlInt("cache", "exp", `SELECT COUNT(*) FROM cache WHERE key = 'short'`) == 0
	})
	if time.Now().Before(expiry) {
		t.Fatal("row deleted before it expired")
	}
	n.callErr("GET", "cache", "exp", "/short", nil, 404, "NOT_FOUND")
	n.call("GET", "cache", "exp", "/long", nil, 200, nil)
	testutil.PollTrue(t, 2*time.Second, "alarm re-armed for the next entry", func() bool {
		a := n.alarm("cache", "exp")
		return a != nil && *a == long.GracePeriodEnds
	})
}

// TestCacheGrace checks the grace-period read: after expiry a plain read
// is a 404 but a grace read still gets the value, and schedules a refresh
// that stores the Refresher's value with the entry's original ttl.
func TestCacheGrace(t *testing.T) {
	n := startNode(t, t.TempDir(), func(rt *node.Runtime) error {
		return rt.Register("cache", examples.NewCache(func(_ context.Context, _ string, stale json.RawMessage) (json.RawMessage, error) {
			var v []int
			json.Unmarshal(stale, &v)
			return json.Marshal(append(v, 4))
		}))
	})
	var put cachePut
	n.call("PUT", "cache", "g", "/k?ttl=1&grace=60", `[1,2,3]`, 200, &put)
	if put.GracePeriodEnds-put.ExpiresAt != 60_000 {
		t.Fatalf("grace period %d ms", put.GracePeriodEnds-put.ExpiresAt)
	}
	testutil.PollTrue(t, 3*time.Second, "entry expired", func() bool {
		return n.do("GET", "/objects/cache/g/k", nil).status == http.StatusNotFound
	})
	// The row is kept through the grace period, so the alarm must not
	// have removed it.
	if n.sqlInt("cache", "g", `SELECT COUNT(*) FROM cache WHERE key = 'k'`) != 1 {
		t.Fatal("row deleted during its grace period")
	}

	r := n.call("GET", "cache", "g", "/k?grace=1", nil, 200, nil)
	if string(r.body) != `[1,2,3]` || r.header.Get("X-Cache") != "STALE" {
		t.Fatalf("grace read: %s (X-Cache %q)", r.body, r.header.Get("X-Cache"))
	}
	testutil.PollTrue(t, 5*time.Second, "background refresh", func() bool {
		return n.sqlInt("cache", "g", `SELECT refreshes FROM cache WHERE key = 'k'`) == 1
	})
	r = n.call("GET", "cache", "g", "/k", nil, 200, nil)
	if string(r.body) != `[1,2,3,4]` || r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("read after refresh: %s (X-Cache %q)", r.body, r.header.Get("X-Cache"))
	}
	exp := n.sqlInt("cache", "g", `SELECT expires_at FROM cache WHERE key = 'k'`)
	if exp <= put.ExpiresAt {
		t.Fatalf("refresh did not extend expires_at: %d, was %d", exp, put.ExpiresAt)
	}
	if n.sqlInt("cache", "g", `SELECT grace_period_ends - expires_at FROM cache WHERE key = 'k'`) != 60_000 {
		t.Fatal("refresh changed the grace period")
	}

	// A fresh grace read is a plain hit and schedules nothing.
	r = n.call("GET", "cache", "g", "/k?grace=true", nil, 200, nil)
	if r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("X-Cache %q on a fresh grace read", r.header.Get("X-Cache"))
	}
	var stats map[string]int64
	n.call("GET", "cache", "g", "/", nil, 200, &stats)
	if stats["entries"] != 1 || stats["fresh"] != 1 {
		t.Fatalf("stats %v", stats)
	}
}

// TestCacheStaleReadWithoutRefresher: with no Refresher (the stock
// binary's cache), a grace read serves the stale value and leaves it
// stale: reading must not vouch for it for another ttl.
func TestCacheStaleReadWithoutRefresher(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	n.call("PUT", "cache", "s", "/k?ttl=1&grace=60", `"old"`, 200, nil)
	testutil.PollTrue(t, 3*time.Second, "entry expired", func() bool {
		return n.do("GET", "/objects/cache/s/k", nil).status == http.StatusNotFound
	})
	for range 2 {
		if r := n.call("GET", "cache", "s", "/k?grace=1", nil, 200, nil); r.header.Get("X-Cache") != "STALE" {
			t.Fatalf("grace read: X-Cache %q", r.header.Get("X-Cache"))
		}
	}
	// Stopping waits for every WaitUntil task, so a refresh the reads
	// scheduled has run by now.
	n.stop()
	n = startNode(t, dir, nil)
	n.callErr("GET", "cache", "s", "/k", nil, 404, "NOT_FOUND")
	if got := n.sqlInt("cache", "s", `SELECT refreshes FROM cache WHERE key = 'k'`); got != 0 {
		t.Fatalf("%d refreshes without a Refresher", got)
	}
	// A PUT is what makes it fresh again.
	n.call("PUT", "cache", "s", "/k?ttl=60", `"new"`, 200, nil)
	if r := n.call("GET", "cache", "s", "/k", nil, 200, nil); string(r.body) != `"new"` {
		t.Fatalf("after PUT: %s", r.body)
	}
}
