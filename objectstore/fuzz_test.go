package objectstore

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// FuzzSplitStatements checks the statement splitter on any text:
//   - the pieces are trimmed, non-empty, in order and disjoint in the input;
//   - splitting the pieces joined again gives the same pieces;
//   - Complete agrees with the split;
//   - SQLite itself never finds a second statement in a piece (it would
//     run one the sandbox's per-statement handling never saw).
func FuzzSplitStatements(f *testing.F) {
	for _, tc := range splitCases {
		f.Add(tc.in)
	}
	for _, tc := range completeCases {
		f.Add(tc.in)
	}
	f.Add("EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2")
	f.Add("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; SELECT 3; END")
	f.Add("SELECT 1 /* unterminated ; SELECT 2")
	f.Add("SELECT x'00;' ; SELECT \"a\"\"b;\"")
	conn, err := openConn(filepath.Join(f.TempDir(), "split.db"), "")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	f.Fuzz(func(t *testing.T, q string) {
		stmts, open, err := scanStatements(q)
		if err != nil {
			if !errors.Is(err, ErrSQL) {
				t.Fatalf("split error %v is not SQL_ERROR", err)
			}
			if Complete(q) {
				t.Fatalf("Complete(%q) with a split error", q)
			}
			return
		}
		if got := Complete(q); got != (len(stmts) > 0 && !open) {
			t.Fatalf("Complete(%q) = %v, split %q open=%v", q, got, stmts, open)
		}
		at := 0
		for _, s := range stmts {
			if s == "" || s != strings.Trim(s, sqlBlanks) {
				t.Fatalf("piece %q is empty or untrimmed", s)
			}
			i := strings.Index(q[at:], s)
			if i < 0 {
				t.Fatalf("piece %q is not in order in %q", s, q)
			}
			at += i + len(s)
		}
		if len(stmts) > 0 {
			again, err := splitStatements(strings.Join(stmts, "\n;\n"))
			if err != nil || !reflect.DeepEqual(again, stmts) {
				t.Fatalf("split(join(%q)) = %q, %v", stmts, again, err)
			}
		}
		if strings.IndexByte(q, 0) >= 0 {
			return // SQLite stops at a NUL; Exec refuses such text (TestHostileSQLWritesNothing)
		}
		for _, s := range stmts {
			if tail, ok := prepareTail(t, conn, s); ok && !blank(tail) {
				t.Fatalf("SQLite reads %q as a statement followed by %q", s, tail)
			}
		}
	})
}

// prepareTail prepares stmt without running it and returns the text SQLite
// left after its first statement; ok is false if it would not prepare.
func prepareTail(t *testing.T, conn *sqlite3.SQLiteConn, stmt string) (string, bool) {
	t.Helper()
	ps, err := conn.Prepare(stmt)
	if err != nil {
		return "", false
	}
	defer ps.Close()
	// go-sqlite3 keeps the unparsed rest in an unexported field; it runs
	// that rest as further statements in Query, so it must be empty.
	f := reflect.ValueOf(ps).Elem().FieldByName("t")
	if !f.IsValid() || f.Kind() != reflect.String {
		t.Fatal("go-sqlite3's statement no longer has its tail field t")
	}
	return f.String(), true
}

// blank reports text that holds nothing but blanks and comments.
func blank(s string) bool {
	stmts, err := splitStatements(s)
	return err == nil && len(stmts) == 0
}

// FuzzKV puts a value under any key and checks the round trip against a
// few fixed keys: a key is accepted exactly when it is 1..MaxKeyBytes of
// UTF-8 without NUL, refusals are BAD_REQUEST or TOO_LARGE and store
// nothing, and Get, List (prefix, start, startAfter, end, reverse) and
// Delete agree with a model.
func FuzzKV(f *testing.F) {
	for i, k := range append(slices.Clone(goodKeys), badKeys...) {
		f.Add(k, []byte("v-"+k), k[:min(len(k), i%3)])
	}
	f.Add("b", []byte{}, "\xff")
	f.Add("b\xc3", []byte{0}, "")
	s, err := Open(Config{Path: filepath.Join(f.TempDir(), "kv.db")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	fixed := []string{"a", "b", "b/", "b\u00e9", "ba", "c", "\u00e9", "\U0010FFFF"}
	for _, k := range fixed {
		if err := s.Put(k, []byte(k)); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, key string, value []byte, prefix string) {
		safe := key != "" && len(key) <= MaxKeyBytes && utf8.ValidString(key) && strings.IndexByte(key, 0) < 0
		isFixed := slices.Contains(fixed, key)
		defer func() { // leave the store as each run found it
			if isFixed {
				s.Put(key, []byte(key))
			} else if safe {
				s.Delete(key)
			}
		}()
		err := s.Put(key, value)
		if (err == nil) != safe || (err == nil) != (ValidateKey(key) == nil) {
			t.Fatalf("Put(%q) = %v, safe=%v", key, err, safe)
		}
		model := map[string][]byte{}
		for _, k := range fixed {
			model[k] = []byte(k)
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Put(%q) error %v is neither BAD_REQUEST nor TOO_LARGE", key, err)
			}
			if errors.Is(err, ErrTooLarge) != (len(key) > MaxKeyBytes) {
				t.Fatalf("Put(%q) error %v for a key of %d bytes", key, err, len(key))
			}
			if _, _, gerr := s.Get(key); gerr == nil {
				t.Fatalf("Get(%q) accepted a key Put refused", key)
			}
		} else {
			model[key] = value
			got, ok, err := s.Get(key)
			if err != nil || !ok || !bytes.Equal(got, value) {
				t.Fatalf("Get(%q) = %q %v %v, want %q", key, got, ok, err, value)
			}
		}
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		slices.Sort(keys) // bytewise, as SQLite's BINARY collation
		checkList := func(o ListOptions, keep func(string) bool) {
			t.Helper()
			var want []string
			for _, k := range keys {
				if keep(k) {
					want = append(want, k)
				}
			}
			if o.Reverse {
				slices.Reverse(want)
			}
			es, err := s.List(o)
			if err != nil {
				t.Fatalf("List(%+v): %v", o, err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Key)
				if !bytes.Equal(e.Value, model[e.Key]) {
					t.Fatalf("List(%+v) value of %q = %q, want %q", o, e.Key, e.Value, model[e.Key])
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("List(%+v) = %q, want %q", o, got, want)
			}
		}
		checkList(ListOptions{Prefix: prefix}, func(k string) bool { return strings.HasPrefix(k, prefix) })
		checkList(ListOptions{Prefix: prefix, Reverse: true}, func(k string) bool { return strings.HasPrefix(k, prefix) })
		if prefix != "" {
			checkList(ListOptions{Start: prefix}, func(k string) bool { return k >= prefix })
			checkList(ListOptions{StartAfter: prefix, Reverse: true}, func(k string) bool { return k > prefix })
			checkList(ListOptions{End: prefix}, func(k string) bool { return k < prefix })
		}
		if err == nil && !isFixed {
			if ok, err := s.Delete(key); !ok || err != nil {
				t.Fatalf("Delete(%q) = %v %v", key, ok, err)
			}
			if _, ok, _ := s.Get(key); ok {
				t.Fatalf("%q still there after Delete", key)
			}
		}
	})
}
