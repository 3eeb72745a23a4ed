package objectstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dura-dev/dura/internal/testutil"
)

func counterEvent(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
	mustExec(t, s, "INSERT INTO counters VALUES ('c', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1")
	if err := s.Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestParkClosesTheConnectionAndKeepsTheStore(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = openTest(t, Config{Path: filepath.Join(dir, fmt.Sprint(i, ".db")), Capture: true})
		counterEvent(t, stores[i])
	}
	s := stores[0]

	// Refused while an event is open or its records are not taken.
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := s.Park(); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("park during an event: %v", err)
	}
	s.Rollback()
	if err := s.Park(); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("park with records not taken: %v", err)
	}

	filesBefore, memBefore := testutil.OpenFilesUnder(t, dir, ""), MemoryUsed()
	tx := s.TxNumber()
	for _, s := range stores {
		s.TakeRecords()
		if err := s.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if err := s.Park(); err != nil {
			t.Fatal(err)
		}
		if !s.Parked() {
			t.Fatal("not parked after Park")
		}
	}
	// Every descriptor of the databases, their WALs and -shm files is
	// closed, and SQLite's connections are gone (each ~40 KiB after a
	// release; a Park that kept the connection would fail here).
	if got := testutil.OpenFilesUnder(t, dir, ""); got != 0 {
		t.Fatalf("%d files still open after parking (%d before)", got, filesBefore)
	}
	if per := (memBefore - MemoryUsed()) / n; per < 32<<10 {
		t.Fatalf("parking gave back %d bytes per store", per)
	}

	// A parked store runs nothing; the calls a node makes between events
	// are harmless.
	if _, err := s.Exec("SELECT 1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("exec on a parked store: %v", err)
	}
	if err := s.Begin(); !errors.Is(err, ErrClosed) {
		t.Fatalf("begin on a parked store: %v", err)
	}
	for name, f := range map[string]func() error{"park": s.Park, "release": s.Release, "checkpoint": s.Checkpoint} {
		if err := f(); err != nil {
			t.Fatalf("%s on a parked store: %v", name, err)
		}
	}
	if s.WALBytes() != 0 {
		t.Fatalf("WALBytes of a parked store: %d", s.WALBytes())
	}

	// Unparked, it is the same object: data, transaction number, KV,
	// capture of the next commit.
	if err := s.Unpark(); err != nil {
		t.Fatal(err)
	}
	if s.Parked() {
		t.Fatal("parked after Unpark")
	}
	if s.TxNumber() != tx {
		t.Fatalf("transaction number %d after unpark, was %d", s.TxNumber(), tx)
	}
	counterEvent(t, s)
	if s.TxNumber() != tx+1 {
		t.Fatalf("transaction number %d after a commit, want %d", s.TxNumber(), tx+1)
	}
	if len(s.TakeRecords()) == 0 {
		t.Fatal("the commit after unparking was not captured")
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, s, "SELECT value FROM counters").Raw(); len(got) != 1 || got[0][0] != int64(2) {
		t.Fatalf("counter after unpark: %v", got)
	}
	if v, ok, err := s.Get("k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("KV after unpark: %q %v %v", v, ok, err)
	}
	s.Rollback()

	// Closing a parked store is fine; a closed one does not unpark.
	p := stores[1]
	if err := p.Close(); err != nil {
		t.Fatalf("close of a parked store: %v", err)
	}
	if err := p.Unpark(); !errors.Is(err, ErrClosed) {
		t.Fatalf("unpark after close: %v", err)
	}
}

func TestUnparkFailureKeepsTheStoreParked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	s := openTest(t, Config{Path: path})
	counterEvent(t, s)
	if err := s.Park(); err != nil {
		t.Fatal(err)
	}
	// A directory where the file was: the open fails.
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpark(); err == nil {
		t.Fatal("unpark over a directory succeeded")
	}
	if !s.Parked() {
		t.Fatal("a failed unpark left the store unparked")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpark(); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, s, "SELECT value FROM counters").Raw(); len(got) != 1 || got[0][0] != int64(1) {
		t.Fatalf("counter after unpark: %v", got)
	}
	s.Rollback()
}
