package objectstore

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// inEvent runs fn as one event of s.
func inEvent(t *testing.T, s *Store, fn func()) {
	t.Helper()
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	fn()
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

// seedMessages makes the guide's messages table with n rows and no index
// but the primary key.
func seedMessages(t *testing.T, s *Store, n int) {
	t.Helper()
	inEvent(t, s, func() {
		mustExec(t, s, `CREATE TABLE messages (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT)`)
		mustExec(t, s, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
			INSERT INTO messages (user_id, ts, body) SELECT 'u' || (x % 50), x * 7 % 100003, 'hello ' || x FROM c`, n)
	})
	s.ResetStatementStats()
}

func advise(t *testing.T, s *Store) []Finding {
	t.Helper()
	var out []Finding
	inEvent(t, s, func() {
		var err error
		if out, err = s.Advice(); err != nil {
			t.Fatal(err)
		}
	})
	return out
}

// only returns the findings of rule.
func only(fs []Finding, rule string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

// suggestedSQL is the SQL of a suggestion: after "...: " and before " -- ".
func suggestedSQL(t *testing.T, f Finding) string {
	t.Helper()
	s := f.Suggestion
	if i := strings.Index(s, ": "); i >= 0 && !strings.HasPrefix(s, "CREATE") {
		s = s[i+2:]
	}
	s, _, _ = strings.Cut(s, " -- ")
	return s
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"literals", "SELECT * FROM t WHERE a = 1 AND b = 'x''y' AND c = X'00ff' AND d = 1.5e3", "SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d = ?"},
		{"params", "select a from t where a = ?1 or b = :b or c = @c or d = $d or e = ?", "select a from t where a = ? or b = ? or c = ? or d = ? or e = ?"},
		{"blanks and comments", "SELECT  a,\n\tb -- why\nFROM /* here */ t", "SELECT a, b FROM t"},
		{"in lists", "SELECT a FROM t WHERE id IN (1, 2, 3) AND k IN (?)", "SELECT a FROM t WHERE id IN (?) AND k IN (?)"},
		{"quoted names", `SELECT "my col", [x] FROM "t"`, `SELECT "my col", "x" FROM "t"`},
		{"function call", "SELECT count(*) FROM t", "SELECT count(*) FROM t"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := normalize(c.in); got != c.want {
				t.Errorf("normalize(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestStatsBounded(t *testing.T) {
	s := openTest(t, Config{StatementShapes: 4})
	inEvent(t, s, func() {
		mustExec(t, s, "CREATE TABLE t (a INTEGER)")
		for i := 0; i < 10; i++ {
			mustExec(t, s, fmt.Sprintf("SELECT a AS c%d FROM t WHERE a = %d", i, i))
		}
		for i := 0; i < 3; i++ {
			mustExec(t, s, "SELECT a FROM t WHERE a = ?", i)
			mustExec(t, s, fmt.Sprintf("SELECT a FROM t WHERE a = %d", i))
		}
	})
	st := s.StatementStats()
	if len(st) != 4 {
		t.Fatalf("%d shapes kept, want 4", len(st))
	}
	if st[0].Shape != "SELECT a FROM t WHERE a = ?" || st[0].Executions != 6 || st[0].MaxPerEvent != 6 {
		t.Errorf("top shape %+v, want 6 runs of the parameter shape", st[0])
	}
	off := openTest(t, Config{StatementShapes: -1})
	inEvent(t, off, func() { mustExec(t, off, "SELECT 1") })
	if off.StatementStats() != nil {
		t.Error("statistics kept with StatementShapes -1")
	}
}

func TestMissingIndex(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 2000)
	for i := 0; i < 11; i++ {
		inEvent(t, s, func() { mustExec(t, s, "SELECT id, body FROM messages WHERE user_id = ?", fmt.Sprint("u", i)) })
	}
	fs := only(advise(t, s), RuleMissingIndex)
	if len(fs) != 1 {
		t.Fatalf("missing-index findings %+v", fs)
	}
	f := fs[0]
	if f.Table != "messages" || f.Evidence["executions"] != 11 || f.Evidence["table_rows"] != 2000 || f.Severity != SeverityWarning {
		t.Errorf("finding %+v", f)
	}
	want := "CREATE INDEX idx_messages_user_id_body ON messages (user_id, body)"
	if !strings.HasPrefix(f.Suggestion, want) {
		t.Fatalf("suggestion %q, want %q", f.Suggestion, want)
	}
	// Ten runs are not enough, nor a small table.
	small := openTest(t, Config{})
	seedMessages(t, small, 500)
	for i := 0; i < 20; i++ {
		inEvent(t, small, func() { mustExec(t, small, "SELECT id FROM messages WHERE user_id = ?", "u1") })
	}
	if fs := only(advise(t, small), RuleMissingIndex); len(fs) != 0 {
		t.Errorf("small table: %+v", fs)
	}

	// The fix: run the suggestion; the same statistics now plan a search.
	inEvent(t, s, func() { mustExec(t, s, f.Suggestion) })
	if fs := only(advise(t, s), RuleMissingIndex); len(fs) != 0 {
		t.Errorf("after %s: %+v", f.Suggestion, fs)
	}
}

func TestSelectStar(t *testing.T) {
	s := openTest(t, Config{})
	inEvent(t, s, func() {
		mustExec(t, s, "CREATE TABLE wide (id INTEGER PRIMARY KEY, a, b, c, d, e, f, g, h, i)")
		mustExec(t, s, "INSERT INTO wide (id, a) VALUES (1, 1)")
		mustExec(t, s, "CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
		mustExec(t, s, "INSERT INTO docs (title, body) VALUES ('t', ?)", strings.Repeat("x", 4000))
		mustExec(t, s, "CREATE TABLE narrow (id INTEGER PRIMARY KEY, a TEXT)")
	})
	inEvent(t, s, func() {
		mustExec(t, s, "SELECT * FROM wide WHERE id = ?", 1)
		mustExec(t, s, "SELECT * FROM docs WHERE id = ?", 1)
		mustExec(t, s, "SELECT * FROM narrow")
	})
	fs := only(advise(t, s), RuleSelectStar)
	if len(fs) != 2 || fs[0].Table != "docs" || fs[1].Table != "wide" {
		t.Fatalf("select-star findings %+v", fs)
	}
	if got, want := suggestedSQL(t, fs[0]), "SELECT id, title FROM docs WHERE id = ?"; got != want {
		t.Errorf("docs suggestion %q, want %q", got, want)
	}
	if fs[1].Evidence["columns"] != 10 {
		t.Errorf("wide evidence %v", fs[1].Evidence)
	}
	// The fix: the statements the suggestion gives, in a new activation.
	fixes := []string{suggestedSQL(t, fs[0]), suggestedSQL(t, fs[1])}
	s.ResetStatementStats()
	inEvent(t, s, func() {
		for _, q := range fixes {
			mustExec(t, s, q, 1)
		}
	})
	if fs := only(advise(t, s), RuleSelectStar); len(fs) != 0 {
		t.Errorf("after %q: %+v", fixes, fs)
	}
}

func TestNPlusOne(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 200)
	inEvent(t, s, func() {
		for i := 0; i < 11; i++ {
			mustExec(t, s, "SELECT id, body FROM messages WHERE id = ?", i)
		}
	})
	// Eleven runs spread over events are not N+1.
	for i := 0; i < 11; i++ {
		inEvent(t, s, func() { mustExec(t, s, "SELECT ts FROM messages WHERE id = ?", i) })
	}
	fs := only(advise(t, s), RuleNPlusOne)
	if len(fs) != 1 || fs[0].Evidence["max_per_event"] != 11 || fs[0].Severity != SeverityWarning {
		t.Fatalf("n-plus-one findings %+v", fs)
	}
	fix := suggestedSQL(t, fs[0])
	fix, _, _ = strings.Cut(fix, " (or JOIN")
	if fix != "SELECT id, body FROM messages WHERE id IN (?, ?, ?)" {
		t.Fatalf("suggestion %q", fs[0].Suggestion)
	}
	s.ResetStatementStats()
	inEvent(t, s, func() {
		mustExec(t, s, "SELECT id, body FROM messages WHERE id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	})
	if fs := only(advise(t, s), RuleNPlusOne); len(fs) != 0 {
		t.Errorf("after one IN query: %+v", fs)
	}
}

func TestUnboundedQuery(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 2500)
	inEvent(t, s, func() { mustExec(t, s, "SELECT id, ts FROM messages WHERE user_id <> ''") })
	fs := only(advise(t, s), RuleUnbounded)
	if len(fs) != 1 || fs[0].Evidence["max_rows_returned"] != 2500 {
		t.Fatalf("unbounded-query findings %+v", fs)
	}
	fix := suggestedSQL(t, fs[0])
	if fix != "SELECT id, ts FROM messages WHERE (user_id <> ?) AND id > ? ORDER BY id LIMIT 100" {
		t.Fatalf("suggestion %q", fs[0].Suggestion)
	}
	// The fix: page through with the cursor.
	s.ResetStatementStats()
	total, last := 0, int64(0)
	for {
		var n int
		inEvent(t, s, func() {
			c := mustExec(t, s, fix, "", last)
			n = c.Len()
			if n > 0 {
				last = c.Raw()[n-1][0].(int64)
			}
		})
		total += n
		if n < 100 {
			break
		}
	}
	if total != 2500 {
		t.Fatalf("pages gave %d rows", total)
	}
	if fs := only(advise(t, s), RuleUnbounded); len(fs) != 0 {
		t.Errorf("after paging: %+v", fs)
	}
}

func TestFKWithoutIndex(t *testing.T) {
	s := openTest(t, Config{})
	inEvent(t, s, func() {
		mustExec(t, s, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
		mustExec(t, s, "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE, text TEXT)")
		mustExec(t, s, "CREATE TABLE tags (post_id INTEGER REFERENCES posts(id), tag TEXT, PRIMARY KEY (post_id, tag))")
	})
	fs := only(advise(t, s), RuleFKWithoutIndex)
	if len(fs) != 1 || fs[0].Table != "posts" {
		t.Fatalf("fk-without-index findings %+v (tags is covered by its primary key)", fs)
	}
	if !strings.HasPrefix(fs[0].Suggestion, "CREATE INDEX idx_posts_user_id ON posts (user_id)") {
		t.Fatalf("suggestion %q", fs[0].Suggestion)
	}
	inEvent(t, s, func() { mustExec(t, s, fs[0].Suggestion) })
	if fs := only(advise(t, s), RuleFKWithoutIndex); len(fs) != 0 {
		t.Errorf("after the index: %+v", fs)
	}
}

func TestTempSort(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 2000)
	for i := 0; i < 3; i++ {
		inEvent(t, s, func() { mustExec(t, s, "SELECT id, ts FROM messages ORDER BY ts DESC LIMIT 10") })
	}
	fs := only(advise(t, s), RuleTempSort)
	if len(fs) != 1 || !strings.HasPrefix(fs[0].Suggestion, "CREATE INDEX idx_messages_ts ON messages (ts DESC)") {
		t.Fatalf("temp-sort findings %+v", fs)
	}
	inEvent(t, s, func() { mustExec(t, s, fs[0].Suggestion) })
	if fs := only(advise(t, s), RuleTempSort); len(fs) != 0 {
		t.Errorf("after the index: %+v", fs)
	}
}

func TestLargeRows(t *testing.T) {
	s := openTest(t, Config{})
	inEvent(t, s, func() {
		mustExec(t, s, "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
		for i := 0; i < 3; i++ {
			mustExec(t, s, "INSERT INTO files (name, data) VALUES (?, zeroblob(150000))", fmt.Sprint("f", i))
		}
	})
	fs := only(advise(t, s), RuleLargeRows)
	if len(fs) != 1 || fs[0].Table != "files" || fs[0].Evidence["avg_row_bytes"] < 150000 || !strings.Contains(fs[0].Suggestion, "compress data") {
		t.Fatalf("large-rows findings %+v", fs)
	}
	// The fix: the guide's compression pattern.
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(make([]byte, 150000))
	w.Close()
	inEvent(t, s, func() { mustExec(t, s, "UPDATE files SET data = ?", buf.Bytes()) })
	if fs := only(advise(t, s), RuleLargeRows); len(fs) != 0 {
		t.Errorf("after compressing: %+v", fs)
	}
}

func TestExplain(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 2000)
	inEvent(t, s, func() {
		plan, fs, err := s.Explain("SELECT id, body FROM messages WHERE user_id = ? ORDER BY ts", "u1")
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) == 0 || plan[0].Detail != "SCAN messages" {
			t.Errorf("plan %+v", plan)
		}
		if len(only(fs, RuleMissingIndex)) != 1 {
			t.Errorf("findings %+v", fs)
		}
		// No parameters given: NULLs stand in.
		if _, _, err := s.Explain("SELECT id FROM messages WHERE id = ?"); err != nil {
			t.Error(err)
		}
		// Never runs the statement.
		if _, _, err := s.Explain("DELETE FROM messages"); err != nil {
			t.Fatal(err)
		}
		if n := mustExec(t, s, "SELECT count(*) FROM messages").Raw()[0][0]; n != int64(2000) {
			t.Errorf("explain deleted rows: %v left", n)
		}
	})
	if len(s.StatementStats()) != 1 {
		t.Errorf("explain recorded statistics: %+v", s.StatementStats())
	}
	// What the sandbox refuses, explain refuses the same way.
	inEvent(t, s, func() {
		for _, q := range []string{"SELECT * FROM _dura_kv", "ATTACH 'x.db' AS x", "VACUUM", "PRAGMA writable_schema = 1"} {
			_, execErr := s.Exec(q)
			_, _, err := s.Explain(q)
			if !errors.Is(execErr, ErrNotAuthorized) || !errors.Is(err, ErrNotAuthorized) {
				t.Errorf("%s: exec %v, explain %v", q, execErr, err)
			}
		}
		if _, _, err := s.Explain("SELECT 1; SELECT 2"); !errors.Is(err, ErrBadRequest) {
			t.Errorf("two statements: %v", err)
		}
	})
}

// TestGuideAntiPatterns builds an object with every anti-pattern on
// purpose, checks that each is named, applies each suggestion and checks
// that nothing is left.
func TestGuideAntiPatterns(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 3000)
	inEvent(t, s, func() {
		mustExec(t, s, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, a, b, c, d, e, f)")
		mustExec(t, s, "CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), token TEXT)")
		mustExec(t, s, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
		mustExec(t, s, "INSERT INTO blobs (data) VALUES (zeroblob(200000))")
		for i := 0; i < 20; i++ {
			mustExec(t, s, "INSERT INTO users (name) VALUES (?)", fmt.Sprint("n", i))
		}
	})
	workload := func() {
		for i := 0; i < 12; i++ {
			inEvent(t, s, func() {
				mustExec(t, s, "SELECT id, text FROM (SELECT id, body AS text, user_id FROM messages) WHERE user_id = ?", "u1")
				mustExec(t, s, "SELECT id, body FROM messages WHERE user_id = ?", fmt.Sprint("u", i))
			})
		}
		inEvent(t, s, func() {
			mustExec(t, s, "SELECT * FROM users WHERE id = ?", 1)
			for i := 0; i < 12; i++ {
				mustExec(t, s, "SELECT name FROM users WHERE id = ?", i)
			}
			mustExec(t, s, "SELECT id, ts FROM messages")
			mustExec(t, s, "SELECT id, user_id FROM messages ORDER BY ts LIMIT 5")
		})
	}
	workload()
	fs := advise(t, s)
	got := map[string]bool{}
	for _, f := range fs {
		got[f.Rule] = true
		t.Logf("%s %s %s: %s %v -> %s", f.Severity, f.Rule, f.Table, f.Statement, f.Evidence, f.Suggestion)
	}
	for _, r := range []string{RuleMissingIndex, RuleSelectStar, RuleNPlusOne, RuleUnbounded, RuleFKWithoutIndex, RuleTempSort, RuleLargeRows} {
		if !got[r] {
			t.Errorf("no %s finding", r)
		}
	}
	if f := only(fs, RuleNPlusOne); len(f) != 2 || f[1].Table != "users" || f[1].Severity != SeverityInfo {
		t.Errorf("n-plus-one findings %+v", f)
	}

	// Apply the fixes: the schema ones as suggested, the statements as
	// the suggestions say, in a new activation.
	done := map[string]bool{}
	inEvent(t, s, func() {
		for _, f := range fs {
			if strings.HasPrefix(f.Suggestion, "CREATE INDEX") && !done[f.Suggestion] {
				mustExec(t, s, f.Suggestion)
				done[f.Suggestion] = true
			}
		}
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestCompression)
		w.Write(make([]byte, 200000))
		w.Close()
		mustExec(t, s, "UPDATE blobs SET data = ?", buf.Bytes())
	})
	s.ResetStatementStats()
	for i := 0; i < 12; i++ {
		inEvent(t, s, func() {
			mustExec(t, s, "SELECT id, text FROM (SELECT id, body AS text, user_id FROM messages) WHERE user_id = ?", "u1")
			mustExec(t, s, "SELECT id, body FROM messages WHERE user_id = ?", fmt.Sprint("u", i))
		})
	}
	inEvent(t, s, func() {
		mustExec(t, s, "INSERT INTO users (name) VALUES (?), (?), (?)", "x", "y", "z")
		mustExec(t, s, "SELECT id, name FROM users WHERE id = ?", 1)
		mustExec(t, s, "SELECT name FROM users WHERE id IN (?, ?, ?, ?)", 1, 2, 3, 4)
		mustExec(t, s, "SELECT id, ts FROM messages WHERE id > ? ORDER BY id LIMIT 100", 0)
		mustExec(t, s, "SELECT id, user_id FROM messages ORDER BY ts LIMIT 5")
	})
	if fs := advise(t, s); len(fs) != 0 {
		t.Errorf("after the fixes: %+v", fs)
	}
}

// TestAliasedTables: query plans name an aliased table by its alias; the
// rules still find the table.
func TestAliasedTables(t *testing.T) {
	s := openTest(t, Config{})
	seedMessages(t, s, 2000)
	inEvent(t, s, func() { mustExec(t, s, "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT)") })
	for i := 0; i < 11; i++ {
		inEvent(t, s, func() {
			mustExec(t, s, "SELECT m.id, m.body FROM messages AS m WHERE m.user_id = ?", fmt.Sprint("u", i))
		})
	}
	inEvent(t, s, func() {
		mustExec(t, s, "SELECT u.name, m.id FROM users u LEFT JOIN messages m ON m.user_id = u.id UNION ALL SELECT NULL, m.id FROM messages m")
	})
	fs := advise(t, s)
	if got := only(fs, RuleMissingIndex); len(got) != 1 || got[0].Table != "messages" || got[0].Evidence["executions"] != 11 {
		t.Fatalf("missing-index findings %+v", got)
	} else if want := "CREATE INDEX idx_messages_user_id_body ON messages (user_id, body)"; !strings.HasPrefix(got[0].Suggestion, want) {
		t.Fatalf("suggestion %q, want %q", got[0].Suggestion, want)
	}
	if got := only(fs, RuleUnbounded); len(got) != 1 || got[0].Table != "users" && got[0].Table != "messages" {
		t.Fatalf("unbounded-query findings %+v", got)
	}
}

func TestTableAliases(t *testing.T) {
	cases := []struct {
		stmt string
		want map[string]string
	}{
		{"SELECT * FROM t", nil},
		{"SELECT * FROM t WHERE x = 1", nil},
		{"SELECT * FROM t a", map[string]string{"a": "t"}},
		{"SELECT * FROM t AS A JOIN u b ON b.x = A.x", map[string]string{"a": "t", "b": "u"}},
		{"SELECT * FROM t a, u AS b, v WHERE 1", map[string]string{"a": "t", "b": "u"}},
		{"SELECT * FROM users u LEFT JOIN messages m ON u.id = m.user_id", map[string]string{"u": "users", "m": "messages"}},
		{"SELECT * FROM t INNER JOIN u ON t.x = u.x", nil},
		{"SELECT * FROM (SELECT x FROM t q) s", map[string]string{"q": "t"}},
		{`SELECT * FROM "my table" "m t"`, map[string]string{"m t": "my table"}},
		{"UPDATE t SET x = 1 WHERE y IN (SELECT y FROM u w)", map[string]string{"w": "u"}},
	}
	for _, c := range cases {
		if got := tableAliases(lex(c.stmt)); !maps.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.stmt, got, c.want)
		}
	}
}
