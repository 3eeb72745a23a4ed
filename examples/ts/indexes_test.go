package ts_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestPartialIndexes: the guide's partial indexes answer the queries they
// were made for, and SQLite plans those queries with them.
func TestPartialIndexes(t *testing.T) {
	n := startNode(t, "", "indexes")
	for i := range 6 {
		n.rpc("Indexes", "i", "addUser", fmt.Sprint("u", i), i%2 == 0, 1000+i)
	}
	for i, ts := range []int64{1700000000000, 1720000000000, 1740000000000, 1750000000000} {
		n.rpc("Indexes", "i", "addMessage", fmt.Sprint("m", i), ts)
	}
	var users, messages []string
	json.Unmarshal(n.rpc("Indexes", "i", "activeUsers", 10), &users)
	json.Unmarshal(n.rpc("Indexes", "i", "recentMessages", 1735689600000, 10), &messages)
	if want := []string{"u4", "u2", "u0"}; !reflect.DeepEqual(users, want) {
		t.Fatalf("active users %v, want %v", users, want)
	}
	if want := []string{"m3", "m2"}; !reflect.DeepEqual(messages, want) {
		t.Fatalf("recent messages %v, want %v", messages, want)
	}
	for _, index := range []string{"idx_active_users", "idx_recent_messages"} {
		if got := n.sql("Indexes", "i", "SELECT count(*) FROM sqlite_master WHERE name = ? AND sql LIKE '%WHERE%'", index); got[0][0] != 1.0 {
			t.Fatalf("%s is not a partial index", index)
		}
	}
	for _, c := range []struct{ query, uses string }{
		{"SELECT id FROM users WHERE active = 1 ORDER BY last_active DESC LIMIT 10", "USING INDEX idx_active_users"},
		{"SELECT id FROM messages WHERE timestamp > 1704067200000 AND timestamp > ? ORDER BY timestamp DESC LIMIT 10", "USING INDEX idx_recent_messages"},
	} {
		if plan := n.plan("Indexes", "i", c.query, 1735689600000); !strings.Contains(plan, c.uses) {
			t.Errorf("%s: plan %q, want %s", c.query, plan, c.uses)
		}
	}
	// Without the index's own term SQLite does not use it, even when the
	// query's bound is past the index's.
	for _, q := range []string{
		"SELECT id FROM messages WHERE timestamp > ? ORDER BY timestamp DESC",
		"SELECT id FROM messages WHERE timestamp > 1735689600000 ORDER BY timestamp DESC",
	} {
		if plan := n.plan("Indexes", "i", q, 1735689600000); strings.Contains(plan, "idx_recent_messages") {
			t.Errorf("%s: plan %q uses the partial index", q, plan)
		}
	}
}
