// Package twins holds the HTTP checks the guide's example classes pass
// in each of their implementations: the Go classes of package examples
// and the TypeScript modules of examples/ts run the same checks, each on
// its own class names.
package twins

import (
	"net/http"
	"testing"
)

// API is a node serving the classes, as a test drives it.
type API interface {
	// Call sends a request to an object's handler, checks the status,
	// decodes a JSON answer into out (if not nil) and returns its headers.
	Call(method, class, name, path string, body any, status int, out any) http.Header
	// CallErr sends a request that must fail with status and code.
	CallErr(method, class, name, path string, body any, status int, code string)
	// SQLInt and SQLStrings run one statement through the admin route.
	SQLInt(class, name, query string, params ...any) int64
	SQLStrings(class, name, query string, params ...any) []string
}

// CounterValue is the counter's answer.
type CounterValue struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// Counter drives object c1 of the counter class through its routes, then
// checks its schema: the guide's table and its index on updated_at.
func Counter(t *testing.T, api API, class string) {
	steps := []struct {
		name, method, path string
		status             int
		want               CounterValue
		code               string
	}{
		{"unset reads 0", "GET", "/", 200, CounterValue{"default", 0}, ""},
		{"increment default by 1", "POST", "/increment", 200, CounterValue{"default", 1}, ""},
		{"increment by 5", "POST", "/increment?by=5", 200, CounterValue{"default", 6}, ""},
		{"other key, negative", "POST", "/increment?key=b&by=-2", 200, CounterValue{"b", -2}, ""},
		{"read default", "GET", "/", 200, CounterValue{"default", 6}, ""},
		{"read other", "GET", "/?key=b", 200, CounterValue{"b", -2}, ""},
		{"empty key is default", "GET", "/?key=", 200, CounterValue{"default", 6}, ""},
		{"by not an integer", "POST", "/increment?by=abc", 400, CounterValue{}, "BAD_REQUEST"},
		{"by a fraction", "POST", "/increment?by=1.5", 400, CounterValue{}, "BAD_REQUEST"},
		{"increment needs POST", "GET", "/increment", 404, CounterValue{}, "NOT_FOUND"},
		{"unknown path", "POST", "/decrement", 404, CounterValue{}, "NOT_FOUND"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != "" {
				api.CallErr(s.method, class, "c1", s.path, nil, s.status, s.code)
				return
			}
			var got CounterValue
			h := api.Call(s.method, class, "c1", s.path, nil, s.status, &got)
			if got != s.want {
				t.Fatalf("got %+v, want %+v", got, s.want)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	t.Run("schema", func(t *testing.T) {
		idx := api.SQLStrings(class, "c1", `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'counters' AND name NOT LIKE 'sqlite_%'`)
		if len(idx) != 1 || idx[0] != "idx_counters_updated" {
			t.Fatalf("indexes %v", idx)
		}
		if api.SQLInt(class, "c1", `SELECT COUNT(*) FROM counters WHERE updated_at > 0`) != 2 {
			t.Fatal("rows without updated_at")
		}
	})
}
