package objectstore

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// event runs fn in one committed transaction.
func event(t *testing.T, s *Store, fn func()) {
	t.Helper()
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	fn()
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestAlarmMirrorAndPrepareRestore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "obj.db")
	s := openTest(t, Config{Path: path, Capture: true})
	at := time.UnixMilli(1_900_000_000_000)
	event(t, s, func() {
		mustExec(t, s, "CREATE TABLE t (v)")
		if err := s.MirrorAlarm(at, true); err != nil {
			t.Fatal(err)
		}
	})
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	copyWithAlarm := filepath.Join(dir, "with.db")
	b, _ := os.ReadFile(path)
	os.WriteFile(copyWithAlarm, b, 0o644)
	event(t, s, func() {
		if err := s.MirrorAlarm(time.Time{}, false); err != nil {
			t.Fatal(err)
		}
		mustExec(t, s, "INSERT INTO t VALUES (1)")
	})
	tx := s.TxNumber()
	s.Close()

	// A copy from before the deletion says the alarm was set; restored as
	// transaction tx+1 it records that number.
	got, has, err := PrepareRestore(copyWithAlarm, tx+1)
	if err != nil || !has || !got.Equal(at) {
		t.Fatalf("alarm in the copy: %v %v %v, want %v", got, has, err, at)
	}
	if n, err := ReadTxNumber(copyWithAlarm); err != nil || n != tx+1 {
		t.Fatalf("transaction number of the prepared copy: %d %v, want %d", n, err, tx+1)
	}
	if _, has, err := PrepareRestore(path, tx+1); err != nil || has {
		t.Fatalf("alarm after its deletion: %v %v", has, err)
	}
	// Dura's own tables pass an import's checks.
	if err := ValidateImport(copyWithAlarm, 1<<30); err != nil {
		t.Fatalf("import of a file with a mirrored alarm: %v", err)
	}

	// The diff turns one file into the other, page for page.
	rec, err := DiffRecord(path, copyWithAlarm, tx+1)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := WholeRecord(copyWithAlarm, tx+1)
	if len(rec.Pages) == 0 || len(rec.Pages) >= len(whole.Pages) && len(whole.Pages) > 2 {
		t.Fatalf("diff has %d pages of %d", len(rec.Pages), len(whole.Pages))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Apply(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a, _ := os.ReadFile(path)
	b, _ = os.ReadFile(copyWithAlarm)
	if string(a) != string(b) {
		t.Fatal("file with the diff applied differs from its target")
	}
}
