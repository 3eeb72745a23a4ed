package objectstore

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestStoreCapture: with Capture, each event that writes commits one
// numbered record; events that only read commit none; the number is in
// the database (it survives a reopen and DeleteAll); and a file rebuilt
// from the records alone reads like the store.
func TestStoreCapture(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	target, err := os.Create(filepath.Join(dir, "rebuilt.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	open := func() *Store {
		s, err := Open(Config{Path: path, Capture: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	event := func(f func() error) []Record {
		t.Helper()
		if err := s.Begin(); err != nil {
			t.Fatal(err)
		}
		if err := f(); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		recs := s.TakeRecords()
		for i := range recs {
			if err := recs[i].Apply(target); err != nil {
				t.Fatal(err)
			}
		}
		return recs
	}
	exec := func(q string, args ...any) func() error {
		return func() error { _, err := s.Exec(q, args...); return err }
	}
	steps := []struct {
		name    string
		run     func() error
		records int
		tx      uint64
	}{
		{"create", exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 1, 1},
		{"insert", exec("INSERT INTO t (v) VALUES ('a'), ('b')"), 1, 2},
		{"read only", exec("SELECT * FROM t"), 0, 2},
		{"kv put", func() error { return s.Put("k", []byte(`1`)) }, 1, 3},
		{"kv get", func() error { _, _, err := s.Get("k"); return err }, 0, 3},
		{"update", exec("UPDATE t SET v = 'c' WHERE id = 1"), 1, 4},
	}
	for _, st := range steps {
		recs := event(st.run)
		if len(recs) != st.records || s.TxNumber() != st.tx || (len(recs) > 0 && recs[len(recs)-1].Tx != st.tx) {
			t.Fatalf("%s: %d records, tx %d; want %d records, tx %d", st.name, len(recs), s.TxNumber(), st.records, st.tx)
		}
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if s.WALBytes() != 0 {
		t.Fatalf("WAL holds %d bytes after a checkpoint", s.WALBytes())
	}
	event(exec("INSERT INTO t (v) VALUES ('after checkpoint')"))
	s.Close()
	s = open()
	if s.TxNumber() != 5 {
		t.Fatalf("tx %d after reopen, want 5", s.TxNumber())
	}
	event(func() error { return s.DeleteAll() })
	event(exec("CREATE TABLE u (x)"))
	if s.TxNumber() != 7 {
		t.Fatalf("tx %d after DeleteAll and a write, want 7", s.TxNumber())
	}
	s.Close()
	if got, want := dump(t, "file:"+target.Name()+"?immutable=1"), dump(t, "file:"+path+"?mode=ro"); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt %v, store %v", got, want)
	}
}
