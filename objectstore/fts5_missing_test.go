//go:build !sqlite_fts5

package objectstore

import (
	"errors"
	"strings"
	"testing"
)

// Without the sqlite_fts5 tag SQLite has no fts5 module: the error says
// how to build one that has it, and FTS4 is there.
func TestFTS5MissingSaysHowToBuildIt(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	defer s.Rollback()
	_, err := s.Exec("CREATE VIRTUAL TABLE docs USING fts5(body)")
	if !errors.Is(err, ErrSQL) || !strings.Contains(err.Error(), "no such module: fts5") || !strings.Contains(err.Error(), "-tags sqlite_fts5") {
		t.Fatalf("fts5 in a build without it: %v", err)
	}
	mustExec(t, s, "CREATE VIRTUAL TABLE notes USING fts4(body)")
	mustExec(t, s, "INSERT INTO notes (body) VALUES ('full text')")
	if got := mustExec(t, s, "SELECT count(*) FROM notes WHERE notes MATCH 'text'").Raw()[0][0]; got != int64(1) {
		t.Fatalf("fts4 match: %v", got)
	}
}
