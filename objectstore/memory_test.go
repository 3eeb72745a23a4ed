package objectstore

import (
	"testing"
)

// TestConnectionMemory: SQLite took the smaller per-connection settings
// (sqlite3_config refuses them once SQLite is initialized), and a store
// works with them. The memory they save is measured by jsrt's
// TestJSFigures.
func TestConnectionMemory(t *testing.T) {
	if memoryConfigErr != nil {
		t.Fatal(memoryConfigErr)
	}
	s := openTest(t, Config{})
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	defer s.Rollback()
	mustExec(t, s, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
	mustExec(t, s, "INSERT INTO t VALUES ('a', 1)")
	if got := mustExec(t, s, "SELECT v FROM t WHERE k = 'a'").Raw()[0][0]; got != int64(1) {
		t.Fatalf("read back %v", got)
	}
}
