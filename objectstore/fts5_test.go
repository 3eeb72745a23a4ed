//go:build sqlite_fts5

package objectstore

import (
	"errors"
	"slices"
	"testing"
)

// TestFTS5 runs a full-text search as Cloudflare's SQLite does: MATCH
// with terms, phrases, prefixes and boolean operators, ranking by bm25(),
// highlight() and snippet(); the index lives in the object's database, so
// it survives a reopen; and the sandbox still refuses what it refuses.
func TestFTS5(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE VIRTUAL TABLE docs USING fts5(title, body)")
	for _, d := range [][2]string{
		{"Durable objects", "Each object runs its events one at a time and owns a SQLite database"},
		{"Alarms", "An object sets one alarm; the alarm wakes the object later"},
		{"Replication", "Every write is on three machines before the response leaves"},
		{"SQLite everywhere", "SQLite SQLite SQLite: the database of every object"},
	} {
		mustExec(t, s, "INSERT INTO docs (title, body) VALUES (?, ?)", d[0], d[1])
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	titles := func(q string, args ...any) []string {
		t.Helper()
		if err := s.Begin(); err != nil {
			t.Fatal(err)
		}
		defer s.Rollback()
		var out []string
		for _, r := range mustExec(t, s, q, args...).Raw() {
			out = append(out, r[0].(string))
		}
		return out
	}
	cases := []struct {
		match string
		want  []string // ordered by rank
	}{
		{"sqlite", []string{"SQLite everywhere", "Durable objects"}},
		{"alarm", []string{"Alarms"}},
		{`"one alarm"`, []string{"Alarms"}},
		{"repl*", []string{"Replication"}},
		{"object NOT alarm", []string{"SQLite everywhere", "Durable objects"}},
		{"machines OR alarm", []string{"Alarms", "Replication"}},
		{"title:sqlite", []string{"SQLite everywhere"}},
		{"nothing", nil},
	}
	for _, c := range cases {
		got := titles("SELECT title FROM docs WHERE docs MATCH ? ORDER BY rank", c.match)
		if c.match == "machines OR alarm" {
			slices.Sort(got) // equal terms count: rank ties
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("MATCH %q: %q, want %q", c.match, got, c.want)
		}
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	r := mustExec(t, s, "SELECT highlight(docs, 0, '[', ']'), bm25(docs) < 0, snippet(docs, 1, '<', '>', '…', 4) FROM docs WHERE docs MATCH 'sqlite' ORDER BY bm25(docs) LIMIT 1").Raw()[0]
	if r[0] != "[SQLite] everywhere" || r[1] != int64(1) || r[2] != "<SQLite> <SQLite> <SQLite>: the…" {
		t.Fatalf("highlight, bm25, snippet: %q", r)
	}
	// The module's pointer function stays out of reach.
	if _, err := s.Exec("SELECT fts5(NULL)"); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("fts5(): %v", err)
	}
	s.Rollback()
	// The index is pages of the object's database: a reopened store finds it.
	path := s.cfg.Path
	s.Close()
	s = openTest(t, Config{Path: path})
	if got := titles("SELECT title FROM docs WHERE docs MATCH 'wakes'"); !slices.Equal(got, []string{"Alarms"}) {
		t.Fatalf("after reopening: %q", got)
	}
}
