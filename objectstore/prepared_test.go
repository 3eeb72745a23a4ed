package objectstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

func TestStatementCache(t *testing.T) {
	s := openTest(t, Config{StatementCache: 4})
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	defer s.Rollback()
	mustExec(t, s, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
	insert := "INSERT INTO t VALUES (?, ?)"
	mustExec(t, s, insert, 1, "a")
	first := s.stmtFor(insert)
	if first == nil {
		t.Fatal("the statement was not kept")
	}
	mustExec(t, s, insert, 2, "b")
	if s.stmtFor(insert) != first {
		t.Fatal("the statement was prepared again")
	}
	for i := range 10 {
		mustExec(t, s, fmt.Sprintf("SELECT v FROM t WHERE k = %d", i))
		if len(s.stmts) > 4 {
			t.Fatalf("%d statements kept, the cache holds 4", len(s.stmts))
		}
	}
	if s.stmtFor(insert) != nil {
		t.Fatal("the least recently used statement was kept past the cache's size")
	}
	// A statement that failed is not kept, and runs again.
	if _, err := s.Exec(insert, 1, "dup"); !errors.Is(err, ErrConstraint) {
		t.Fatalf("duplicate key: %v", err)
	}
	if s.stmtFor(insert) != nil {
		t.Fatal("a failed statement was kept")
	}
	mustExec(t, s, insert, 3, "c")
	// Too few arguments is an error; extra ones are ignored, as before.
	if _, err := s.Exec(insert, 4); err == nil {
		t.Fatal("one argument for two parameters ran")
	}
	mustExec(t, s, "SELECT ?", 1, 2)
	if got := mustExec(t, s, "SELECT count(*) FROM t").Raw()[0][0]; got != int64(3) {
		t.Fatalf("%v rows", got)
	}
}

// stmtFor is q's kept statement, nil when there is none.
func (s *Store) stmtFor(q string) any {
	for _, c := range s.stmts {
		if c.text == q {
			return c.st
		}
	}
	return nil
}

func TestReleaseGivesBackMemory(t *testing.T) {
	const n = 30
	dir := t.TempDir()
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = openTest(t, Config{Path: filepath.Join(dir, fmt.Sprint(i, ".db")), Capture: true})
		s := stores[i]
		for range 2 {
			if err := s.Begin(); err != nil {
				t.Fatal(err)
			}
			mustExec(t, s, "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
			mustExec(t, s, "INSERT INTO counters VALUES ('c', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1")
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			s.TakeRecords()
		}
	}
	if err := stores[0].Begin(); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].Release(); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("release during an event: %v", err)
	}
	stores[0].Rollback()
	before := MemoryUsed()
	for _, s := range stores {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
		if len(s.stmts) != 0 {
			t.Fatalf("%d statements kept after release", len(s.stmts))
		}
	}
	// Each store kept a dozen statements and its pages (~35 KiB); a
	// release that gave back nothing would fail here.
	if per := (before - MemoryUsed()) / n; per < 16<<10 {
		t.Fatalf("release gave back %d bytes per store", per)
	}
	// A released store works as before.
	for _, s := range stores {
		if err := s.Begin(); err != nil {
			t.Fatal(err)
		}
		mustExec(t, s, "UPDATE counters SET value = value + 1")
		if got := mustExec(t, s, "SELECT value FROM counters").Raw()[0][0]; got != int64(3) {
			t.Fatalf("counter %v after release", got)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	stores[1].Close()
	if err := stores[1].Release(); !errors.Is(err, ErrClosed) {
		t.Fatalf("release of a closed store: %v", err)
	}
}
