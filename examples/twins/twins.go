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

// Ledger is what must not change when an accounts request is refused.
type Ledger struct{ Alice, Bob, Txs int64 }

// ReadLedger reads alice's and bob's balances and the transaction count
// of an accounts object.
func ReadLedger(t *testing.T, api API, class, name string) Ledger {
	t.Helper()
	var a, b struct{ Balance int64 }
	api.Call("GET", class, name, "/balance?user=alice", nil, 200, &a)
	api.Call("GET", class, name, "/balance?user=bob", nil, 200, &b)
	return Ledger{a.Balance, b.Balance, api.SQLInt(class, name, `SELECT COUNT(*) FROM transactions`)}
}

// Accounts drives object bank of the accounts class through deposits,
// withdrawals, updates and transfers, refused ones changing nothing, then
// reads alice's transaction log.
func Accounts(t *testing.T, api API, class string) {
	steps := []struct {
		name, path string
		body       any
		status     int
		code       string
		want       Ledger
	}{
		{"deposit opens an account", "/deposit?user=alice&amount=100", nil, 200, "", Ledger{100, 0, 1}},
		{"withdraw", "/withdraw?user=alice&amount=30", nil, 200, "", Ledger{70, 0, 2}},
		{"overdraft", "/withdraw?user=alice&amount=71", nil, 409, "CONSTRAINT", Ledger{70, 0, 2}},
		{"update overdraft", "/update", map[string]any{"user_id": "alice", "amount": -1000}, 409, "CONSTRAINT", Ledger{70, 0, 2}},
		{"withdraw from no account", "/withdraw?user=bob&amount=1", nil, 404, "NOT_FOUND", Ledger{70, 0, 2}},
		{"update opens an account", "/update", map[string]any{"user_id": "bob", "amount": 5}, 200, "", Ledger{70, 5, 3}},
		{"amount not an integer", "/deposit?user=alice&amount=1.5", nil, 400, "BAD_REQUEST", Ledger{70, 5, 3}},
		{"negative deposit", "/deposit?user=alice&amount=-5", nil, 400, "BAD_REQUEST", Ledger{70, 5, 3}},
		{"zero update", "/update", map[string]any{"user_id": "alice", "amount": 0}, 400, "BAD_REQUEST", Ledger{70, 5, 3}},
		{"transfer", "/transfer", map[string]any{"from": "alice", "to": "bob", "amount": 20}, 200, "", Ledger{50, 25, 5}},
		{"transfer overdraft", "/transfer", map[string]any{"from": "alice", "to": "bob", "amount": 51}, 409, "CONSTRAINT", Ledger{50, 25, 5}},
		{"transfer to unknown account", "/transfer", map[string]any{"from": "alice", "to": "carol", "amount": 10}, 404, "NOT_FOUND", Ledger{50, 25, 5}},
		{"transfer to self", "/transfer", map[string]any{"from": "alice", "to": "alice", "amount": 10}, 400, "BAD_REQUEST", Ledger{50, 25, 5}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != "" {
				api.CallErr("POST", class, "bank", s.path, s.body, s.status, s.code)
			} else {
				api.Call("POST", class, "bank", s.path, s.body, s.status, nil)
			}
			if got := ReadLedger(t, api, class, "bank"); got != s.want {
				t.Fatalf("ledger %+v, want %+v", got, s.want)
			}
		})
	}
	t.Run("transaction log", func(t *testing.T) {
		var got struct {
			Transactions []struct {
				Amount int64 `json:"amount"`
			}
		}
		api.Call("GET", class, "bank", "/transactions?user=alice", nil, 200, &got)
		want := []int64{-20, -30, 100}
		if len(got.Transactions) != len(want) {
			t.Fatalf("transactions %+v", got.Transactions)
		}
		for i, tx := range got.Transactions {
			if tx.Amount != want[i] {
				t.Fatalf("transactions %+v, want amounts %v", got.Transactions, want)
			}
		}
	})
}

// Document is the documents class's answer.
type Document struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	Version int64  `json:"version"`
}

// Documents drives object docs of the documents class through
// optimistic-locking updates: a stale or future version loses, and the
// stored version counts the updates that won.
func Documents(t *testing.T, api API, class string) {
	put := func(content string, version int64) map[string]any {
		return map[string]any{"content": content, "version": version}
	}
	steps := []struct {
		name, method, path string
		body               any
		status             int
		code               string
		want               Document // checked on success
	}{
		{"missing document", "GET", "/docs/d1", nil, 404, "NOT_FOUND", Document{}},
		{"create with version 0", "PUT", "/docs/d1", put("v1 text", 0), 201, "", Document{"d1", "v1 text", 1}},
		{"create again", "PUT", "/docs/d1", put("other", 0), 409, "CONSTRAINT", Document{}},
		{"update from the version read", "PUT", "/docs/d1", put("v2 text", 1), 200, "", Document{"d1", "v2 text", 2}},
		{"update from a stale version", "PUT", "/docs/d1", put("lost update", 1), 409, "CONSTRAINT", Document{}},
		{"update from a future version", "PUT", "/docs/d1", put("?", 7), 409, "CONSTRAINT", Document{}},
		{"read the winner", "GET", "/docs/d1", nil, 200, "", Document{"d1", "v2 text", 2}},
		{"update a missing document", "PUT", "/docs/d2", put("x", 3), 404, "NOT_FOUND", Document{}},
		{"version missing", "PUT", "/docs/d1", map[string]any{"content": "x"}, 400, "BAD_REQUEST", Document{}},
		{"content missing", "PUT", "/docs/d1", map[string]any{"version": 2}, 400, "BAD_REQUEST", Document{}},
		{"negative version", "PUT", "/docs/d1", put("x", -1), 400, "BAD_REQUEST", Document{}},
		{"empty content is content", "PUT", "/docs/d1", put("", 2), 200, "", Document{"d1", "", 3}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != "" {
				api.CallErr(s.method, class, "docs", s.path, s.body, s.status, s.code)
				return
			}
			var got Document
			api.Call(s.method, class, "docs", s.path, s.body, s.status, &got)
			if got != s.want {
				t.Fatalf("got %+v, want %+v", got, s.want)
			}
		})
	}
	if v := api.SQLInt(class, "docs", `SELECT version FROM documents WHERE id = 'd1'`); v != 3 {
		t.Fatalf("stored version %d", v)
	}
}
