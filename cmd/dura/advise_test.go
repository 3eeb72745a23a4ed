package main

import (
	"strings"
	"testing"
)

// TestAdviseAndExplain drives the guide's first anti-pattern (a filter on
// a column without an index) through the CLI: advise names it, its
// suggestion applied clears it, and explain shows the plan either way.
func TestAdviseAndExplain(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "db/adv", `CREATE TABLE messages (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, ts INTEGER NOT NULL);
		WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
		INSERT INTO messages (user_id, ts) SELECT 'u' || (x % 20), x FROM c`))
	q := "SELECT id, ts FROM messages WHERE user_id = ?"
	for i := 0; i < 11; i++ {
		must(t, n.cli(t, "sql", "db/adv", q, "--param", `"u1"`))
	}
	r := must(t, n.cli(t, "explain", "db/adv", q, "--param", `"u1"`))
	if !strings.Contains(r.stdout, "`--SCAN messages") || !strings.Contains(r.stdout, "missing-index") {
		t.Fatalf("explain output:\n%s", r.stdout)
	}
	r = must(t, n.cli(t, "advise", "db/adv"))
	want := "CREATE INDEX idx_messages_user_id_ts ON messages (user_id, ts)"
	if !strings.Contains(r.stdout, "WARNING  missing-index  table messages") || !strings.Contains(r.stdout, want) ||
		!strings.Contains(r.stdout, "executions=11") {
		t.Fatalf("advise output:\n%s", r.stdout)
	}
	must(t, n.cli(t, "sql", "db/adv", want))
	r = must(t, n.cli(t, "advise", "db/adv"))
	if r.stdout != "no findings for db/adv\n" {
		t.Fatalf("advise after the index:\n%s", r.stdout)
	}
	r = must(t, n.cli(t, "explain", "db/adv", q))
	if !strings.Contains(r.stdout, "SEARCH messages USING COVERING INDEX idx_messages_user_id_ts") {
		t.Fatalf("explain after the index:\n%s", r.stdout)
	}
	// The sandbox refuses what it refuses, explained or not.
	if r := n.cli(t, "explain", "db/adv", "SELECT * FROM _dura_kv"); r.code == 0 || !strings.Contains(r.stderr, "NOT_AUTHORIZED") {
		t.Fatalf("explain of a reserved table: %v", r)
	}
}
