package ts_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

type cachePut struct {
	Key             string `json:"key"`
	ExpiresAt       int64  `json:"expires_at"`
	GracePeriodEnds int64  `json:"grace_period_ends"`
}

// TestCachePutGet: the checks of examples.TestCachePutGet that the
// guide's CacheDO shares (it stores re-serialised JSON, not the bytes).
func TestCachePutGet(t *testing.T) {
	n := startNode(t, "", "cache")
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
		{"missing key", "GET", "/k", nil, 404, "NOT_FOUND"},
		{"store", "PUT", "/k?ttl=60", value, 200, ""},
		{"store with default ttl", "PUT", "/d", `"x"`, 200, ""},
		{"grace flag not a boolean", "GET", "/k?grace=maybe", nil, 400, "BAD_REQUEST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.code != "" {
				n.callErr(c.method, "CacheDO", "c1", c.path, c.body, c.status, c.code)
				return
			}
			n.call(c.method, "CacheDO", "c1", c.path, c.body, c.status, nil)
		})
	}
	r := n.call("GET", "CacheDO", "c1", "/k", nil, 200, nil)
	var got, want any
	json.Unmarshal(r.body, &got)
	json.Unmarshal([]byte(value), &want)
	if !reflect.DeepEqual(got, want) || r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("got %s %v", r.body, r.header)
	}
	if grace := n.sqlInt("CacheDO", "c1", `SELECT grace_period_ends - expires_at FROM cache WHERE key = 'd'`); grace != 300_000 {
		t.Fatalf("grace %d ms", grace)
	}
	var del map[string]bool
	n.call("DELETE", "CacheDO", "c1", "/k", nil, 200, &del)
	if !del["deleted"] {
		t.Fatal("not deleted")
	}
	n.callErr("GET", "CacheDO", "c1", "/k", nil, 404, "NOT_FOUND")
}

// TestCacheExpiryAndGrace: an expired entry is not served, a grace read
// still gets it (STALE), and the guide's hourly alarm deletes it.
func TestCacheExpiryAndGrace(t *testing.T) {
	n := startNode(t, "", "cache")
	var put cachePut
	start := time.Now().UnixMilli()
	n.call("PUT", "CacheDO", "exp", "/short?ttl=1", `{"v":1}`, 200, &put)
	var alarm struct{ Alarm *int64 }
	json.Unmarshal(n.do("GET", "/v1/objects/CacheDO/exp/alarm", nil).body, &alarm)
	if alarm.Alarm == nil || *alarm.Alarm < start+3600_000 || *alarm.Alarm > time.Now().UnixMilli()+3600_000 {
		t.Fatalf("cleanup alarm %v, want in an hour", alarm.Alarm)
	}
	// Past its expiry by a millisecond at least: the guide's plain read
	// drops an entry at expires_at, its grace read calls it expired after.
	testutil.Poll(t, 5*time.Second, "the entry to expire", func() string {
		if r := n.do("GET", "/objects/CacheDO/exp/short", nil); r.status != 404 || time.Now().UnixMilli() <= put.ExpiresAt {
			return string(r.body)
		}
		return ""
	})
	r := n.call("GET", "CacheDO", "exp", "/short?grace=1", nil, 200, nil)
	if r.header.Get("X-Cache") != "STALE" || string(r.body) != `{"v":1}` {
		t.Fatalf("grace read: %s %v", r.body, r.header)
	}
	// Fire the cleanup now: it deletes the expired row and re-arms.
	n.do("PUT", "/v1/objects/CacheDO/exp/alarm", `{"at":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`}`)
	testutil.Poll(t, 5*time.Second, "the alarm to delete the expired row", func() string {
		if c := n.sqlInt("CacheDO", "exp", `SELECT COUNT(*) FROM cache`); c != 0 {
			return strconv.FormatInt(c, 10) + " rows"
		}
		return ""
	})
	json.Unmarshal(n.do("GET", "/v1/objects/CacheDO/exp/alarm", nil).body, &alarm)
	if alarm.Alarm == nil || *alarm.Alarm < time.Now().UnixMilli()+3500_000 {
		t.Fatalf("alarm not re-armed: %v", alarm.Alarm)
	}
}
