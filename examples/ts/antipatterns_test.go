package ts_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dura-dev/dura/rpc"
)

// advice is the advisor's findings for an object.
func (n *tsNode) advice(class, name string) []rpc.Finding {
	n.t.Helper()
	r := n.do("GET", "/v1/objects/"+class+"/"+name+"/advice", nil)
	var adv rpc.AdviceResponse
	if r.status != 200 || json.Unmarshal(r.body, &adv) != nil {
		n.t.Fatalf("advice %s/%s: %d %s", class, name, r.status, r.body)
	}
	return adv.Findings
}

// finding is the first warning of rule on a statement containing stmt.
func finding(fs []rpc.Finding, rule, stmt string) *rpc.Finding {
	for i, f := range fs {
		if f.Rule == rule && f.Severity == "warning" && strings.Contains(f.Statement, stmt) {
			return &fs[i]
		}
	}
	return nil
}

// TestAntiPatterns: the guide's BAD queries, run on one object, draw the
// advisor's warnings; its GOOD ones, on another, do not.
func TestAntiPatterns(t *testing.T) {
	n := startNode(t, "", "antipatterns")
	const users, perUser = 20, 60 // 1 200 messages: past the advisor's 1 000-row bar
	for _, name := range []string{"bad", "good"} {
		if got := string(n.rpc("AntiPatterns", name, "seed", users, perUser)); got != "1200" {
			t.Fatalf("seed %s: %s", name, got)
		}
	}
	byUser := "SELECT * FROM messages WHERE user_id = ?"
	unbounded := "SELECT * FROM messages ORDER BY timestamp DESC"

	for range 12 {
		if got := string(n.rpc("AntiPatterns", "bad", "noIndex", "u3")); got != "60" {
			t.Fatalf("noIndex: %s", got)
		}
	}
	if got := string(n.rpc("AntiPatterns", "bad", "nPlusOne")); got != "1200" {
		t.Fatalf("nPlusOne: %s", got)
	}
	if got := string(n.rpc("AntiPatterns", "bad", "unbounded")); got != "1200" {
		t.Fatalf("unbounded: %s", got)
	}
	bad := n.advice("AntiPatterns", "bad")
	for _, w := range []struct{ rule, stmt string }{
		{"missing-index", byUser},      // anti-pattern 1
		{"n-plus-one", byUser},         // anti-pattern 3
		{"unbounded-query", unbounded}, // anti-pattern 4
	} {
		if finding(bad, w.rule, w.stmt) == nil {
			t.Errorf("bad: no %s warning on %q; findings %+v", w.rule, w.stmt, bad)
		}
	}
	// Anti-pattern 2 on this narrow table (4 short columns) costs little:
	// the advisor flags SELECT * only on wide tables or large columns.
	if f := finding(bad, "select-star", byUser); f != nil {
		t.Errorf("bad: select-star on a narrow table: %+v", *f)
	}

	n.rpc("AntiPatterns", "good", "addIndex")
	for range 12 {
		if got := string(n.rpc("AntiPatterns", "good", "selectColumns", "u3")); got != "60" {
			t.Fatalf("selectColumns: %s", got)
		}
	}
	if got := string(n.rpc("AntiPatterns", "good", "join")); got != "1200" {
		t.Fatalf("join: %s", got)
	}
	if got := string(n.rpc("AntiPatterns", "good", "limited")); got != "100" {
		t.Fatalf("limited: %s", got)
	}
	good := n.advice("AntiPatterns", "good")
	for _, f := range good {
		switch {
		case f.Severity != "warning":
			t.Logf("good (%s): %s on %s: %s", f.Severity, f.Rule, f.Table, f.Statement) // the seed's inserts
		case f.Rule == "missing-index" || f.Rule == "n-plus-one":
			t.Errorf("good: %s warning: %+v", f.Rule, f)
		case f.Rule == "unbounded-query" && strings.Contains(f.Statement, "LIMIT"):
			t.Errorf("good: the LIMIT query flagged unbounded: %+v", f)
		default:
			// What the advisor still says about the guide's GOOD code:
			// LIMIT 100 still sorts every row (no index on timestamp),
			// and the JOIN has no LIMIT either (checked below).
			t.Logf("good (%s): %s on %s: %s", f.Severity, f.Rule, f.Table, f.Statement)
		}
	}
	if finding(good, "unbounded-query", "LEFT JOIN messages m") == nil {
		t.Errorf("good: the JOIN returned 1 200 rows without a LIMIT and was not flagged; findings %+v", good)
	}
}
