package objectstore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// objectState is everything a refused statement must leave as it was: the
// user's rows, the KV entries, the identity and the schema (main and temp).
type objectState struct {
	Rows, Schema [][]any
	KV           []Entry
	Class, Name  string
}

func snapshot(t *testing.T, s *Store) objectState {
	t.Helper()
	var st objectState
	var err error
	if st.Rows, err = s.queryInternal("SELECT id, v FROM t ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if st.Schema, err = s.queryInternal(`SELECT 'main', type, name, sql FROM sqlite_master
		UNION ALL SELECT 'temp', type, name, sql FROM sqlite_temp_master ORDER BY 1, 2, 3`); err != nil {
		t.Fatal(err)
	}
	if st.KV, err = s.List(ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if st.Class, st.Name, err = ReadIdentity(s.Path()); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestHostileSQLWritesNothing runs each hostile statement the way the
// runtime does, inside an event that has already written, then rolls the
// event back as the runtime does on an error. The refusal must be of the
// documented kind and the object exactly as it was before the event.
func TestHostileSQLWritesNothing(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.db")
	s := openTest(t, Config{Path: filepath.Join(dir, "obj.db"), StatementTimeout: 200 * time.Millisecond, MaxBytes: 256 << 10})
	if err := s.SetIdentity("db", "victim"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	mustExec(t, s, "INSERT INTO t (v) VALUES ('a'), ('b')")
	if err := s.Put("k", []byte("kv")); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, s)
	endless := "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c)"
	cases := []struct {
		name string
		sql  string
		args []any
		want error
	}{
		{"NUL cuts the statement short", "DELETE FROM t\x00 WHERE id = 0", nil, ErrBadRequest},
		{"update sqlite_schema", "UPDATE sqlite_schema SET sql = 'CREATE TABLE t (x)'", nil, ErrNotAuthorized},
		{"insert into sqlite_temp_master", "INSERT INTO sqlite_temp_master VALUES ('table', 'x', 'x', 0, '')", nil, ErrNotAuthorized},
		{"drop sqlite_master", "DROP TABLE sqlite_master", nil, ErrNotAuthorized},
		{"alter sqlite_master", "ALTER TABLE sqlite_master RENAME TO m", nil, ErrNotAuthorized},
		{"create a sqlite_ table", "CREATE TABLE sqlite_evil (v)", nil, ErrNotAuthorized},
		{"writable_schema then write", "PRAGMA writable_schema = 1; UPDATE sqlite_master SET sql = ''", nil, ErrNotAuthorized},
		{"trigger writing kv", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO _dura_kv VALUES ('pwn', x'00'); END", nil, ErrNotAuthorized},
		{"temp trigger writing identity", "CREATE TEMP TRIGGER tr AFTER DELETE ON main.t BEGIN UPDATE _dura_object SET v = 'x'; END", nil, ErrNotAuthorized},
		{"trigger with a quoted name", `CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM "_DURA_KV"; END`, nil, ErrNotAuthorized},
		{"trigger behind comments", "/* x */ CREATE -- y\n TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM [_dura_object]; END", nil, ErrNotAuthorized},
		{"view over kv", "CREATE VIEW v AS SELECT * FROM _dura_kv", nil, ErrNotAuthorized},
		{"temp view over kv", "CREATE TEMP VIEW v AS SELECT key FROM main._dura_kv", nil, ErrNotAuthorized},
		{"string literal as a table name", "SELECT * FROM '_dura_kv'", nil, ErrNotAuthorized},
		{"schema-qualified write", "DELETE FROM main._dura_kv", nil, ErrNotAuthorized},
		{"foreign key into kv", "CREATE TABLE fk (k TEXT REFERENCES _dura_kv(key)); INSERT INTO fk VALUES ('k')", nil, ErrNotAuthorized},
		{"table-valued pragma on kv", "SELECT * FROM pragma_table_info('_dura_kv')", nil, ErrNotAuthorized},
		{"table-valued journal_mode", "SELECT * FROM pragma_journal_mode", nil, ErrNotAuthorized},
		{"vacuum into a file", "VACUUM INTO '" + outside + "'", nil, ErrNotAuthorized},
		{"vacuum", "vacuum", nil, ErrNotAuthorized},
		{"attach a file", "ATTACH '" + outside + "' AS x", nil, ErrNotAuthorized},
		{"fts3_tokenizer pointer", "SELECT fts3_tokenizer('simple', x'0000000000000000')", nil, ErrNotAuthorized},
		{"endless recursion", "INSERT INTO t (v) SELECT count(*) FROM " + endless, nil, ErrTimeout},
		{"filling the database", "INSERT INTO t (v) SELECT zeroblob(10000) FROM " + endless, nil, ErrStorageFull},
		{"zeroblob over the value limit", "INSERT INTO t (v) VALUES (zeroblob(3000000))", nil, ErrTooLarge},
		{"randomblob over the value limit", "INSERT INTO t (v) VALUES (randomblob(2097153))", nil, ErrTooLarge},
		{"printf padding", "INSERT INTO t (v) VALUES (printf('%.*c', 3000000, 'x'))", nil, ErrTooLarge},
		{"group_concat growth", "INSERT INTO t (v) SELECT group_concat(zeroblob(1000)) FROM (SELECT x FROM " + endless + " LIMIT 3000)", nil, ErrTooLarge},
		{"statement over 100 KB", "INSERT INTO t (v) VALUES ('" + strings.Repeat("x", MaxStatementBytes) + "')", nil, ErrTooLarge},
		{"101 parameters", "INSERT INTO t (v) VALUES (?)", make([]any, MaxParams+1), ErrTooLarge},
		{"parameter over the value limit", "INSERT INTO t (v) VALUES (?)", []any{make([]byte, MaxValueBytes+1)}, ErrTooLarge},
		{"deeply nested expression", "INSERT INTO t (v) VALUES (" + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000) + ")", nil, ErrSQL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Begin(); err != nil {
				t.Fatal(err)
			}
			mustExec(t, s, "INSERT INTO t (v) VALUES ('partial')")
			if err := s.Put("partial", []byte("x")); err != nil {
				t.Fatal(err)
			}
			_, err := s.Exec(tc.sql, tc.args...)
			if rerr := s.Rollback(); rerr != nil {
				t.Fatalf("rollback: %v", rerr)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := snapshot(t, s); !reflect.DeepEqual(got, want) {
				t.Fatalf("object changed:\n got %v\nwant %v", got, want)
			}
		})
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a statement wrote outside the object: %v", err)
	}
}

// TestDeleteAllFiresNoTriggerWithItsRights: DeleteAll's DROP TABLE of a
// parent cascades into a child; a trigger on the child (here one that got
// in before the creation check existed) would run with the store's rights.
func TestDeleteAllFiresNoTriggerWithItsRights(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.SetIdentity("db", "victim"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, `CREATE TABLE p (id INTEGER PRIMARY KEY);
		CREATE TABLE c (pid REFERENCES p(id) ON DELETE CASCADE);
		INSERT INTO p VALUES (1); INSERT INTO c VALUES (1)`)
	for _, schema := range []string{"TEMP", ""} {
		trig := "CREATE " + schema + " TRIGGER evil_" + strings.ToLower(schema) + ` AFTER DELETE ON main.c BEGIN
			INSERT OR REPLACE INTO _dura_object (k, v) VALUES ('name', 'someone-else'); END`
		if _, err := s.Exec(trig); !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("%s trigger naming _dura_object: %v", schema, err)
		}
		if err := s.execInternal(trig); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if class, name, err := ReadIdentity(s.Path()); err != nil || class != "db" || name != "victim" {
		t.Fatalf("identity after DeleteAll: %q %q %v", class, name, err)
	}
	if left := mustExec(t, s, "SELECT name FROM sqlite_temp_master").Raw(); len(left) != 0 {
		t.Fatalf("temp objects left: %v", left)
	}
}

// TestAnalyzeSkipsReservedTables: ANALYZE and PRAGMA optimize (allowed)
// work on an object that has Dura's tables, and record nothing about them.
func TestAnalyzeSkipsReservedTables(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.SetIdentity("db", "o"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE TABLE t (v); CREATE INDEX tv ON t(v); INSERT INTO t VALUES (1), (2)")
	for _, q := range []string{"ANALYZE", "ANALYZE main", "PRAGMA optimize", "ANALYZE t"} {
		if _, err := s.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows, err := s.queryInternal("SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY tbl")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rows, [][]any{{"t"}}) {
		t.Fatalf("sqlite_stat1 covers %v", rows)
	}
}

func TestImportRefusesTriggersOnReservedTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "evil.db")
	e, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	err = e.execInternal("CREATE TABLE t (v); CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM _dura_kv; END")
	e.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateImport(path, 0); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("trigger writing _dura_kv imported: %v", err)
	}
}
