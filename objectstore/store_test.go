package objectstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "obj.db")
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustExec(t *testing.T, s *Store, q string, args ...any) *Cursor {
	t.Helper()
	c, err := s.Exec(q, args...)
	if err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
	return c
}

func TestPragmasAtOpen(t *testing.T) {
	s := openTest(t, Config{})
	for name, want := range map[string]any{"journal_mode": "wal", "synchronous": int64(2), "foreign_keys": int64(1)} {
		rows, err := s.queryInternal("PRAGMA " + name)
		if err != nil {
			t.Fatal(err)
		}
		if rows[0][0] != want {
			t.Errorf("PRAGMA %s = %v, want %v", name, rows[0][0], want)
		}
	}
}

func TestExecCursor(t *testing.T) {
	s := openTest(t, Config{})
	mustExec(t, s, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
	c := mustExec(t, s, "INSERT INTO t (name, score, data) VALUES ('a', 1.5, x'00ff'), ('b', 2, NULL)")
	if c.RowsWritten() != 2 || c.Changes() != 2 || c.LastInsertID() != 2 {
		t.Fatalf("insert counters: written=%d changes=%d last=%d", c.RowsWritten(), c.Changes(), c.LastInsertID())
	}
	c = mustExec(t, s, "SELECT id, name, score, data FROM t ORDER BY id")
	if !reflect.DeepEqual(c.ColumnNames(), []string{"id", "name", "score", "data"}) {
		t.Fatalf("columns %v", c.ColumnNames())
	}
	if c.RowsRead() != 2 || c.RowsWritten() != 0 || c.Changes() != 0 {
		t.Fatalf("select counters: read=%d written=%d changes=%d", c.RowsRead(), c.RowsWritten(), c.Changes())
	}
	want := [][]any{{int64(1), "a", 1.5, []byte{0, 0xff}}, {int64(2), "b", 2.0, nil}}
	if !reflect.DeepEqual(c.Raw(), want) {
		t.Fatalf("raw = %#v", c.Raw())
	}
	var id int64
	var name string
	var score float64
	var data []byte
	n := 0
	for c.Next() {
		if err := c.Scan(&id, &name, &score, &data); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 || id != 2 || name != "b" || score != 2 {
		t.Fatalf("scan ended with n=%d id=%d name=%q score=%v", n, id, name, score)
	}
	if _, err := c.One(); !errors.Is(err, ErrNotOneRow) {
		t.Fatalf("One on two rows: %v", err)
	}
	row, err := mustExec(t, s, "SELECT name FROM t WHERE id = ?", 1).One()
	if err != nil || row["name"] != "a" {
		t.Fatalf("One = %v, %v", row, err)
	}
	if got := mustExec(t, s, "SELECT * FROM t").ToArray(); len(got) != 2 || got[1]["name"] != "b" {
		t.Fatalf("ToArray = %v", got)
	}
}

func TestMultiStatementArgsBindToLast(t *testing.T) {
	s := openTest(t, Config{})
	c := mustExec(t, s, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x;y'); -- a ; comment\nSELECT v, ? AS p FROM t", "arg")
	if got := c.Raw(); len(got) != 1 || got[0][0] != "x;y" || got[0][1] != "arg" {
		t.Fatalf("rows = %v", got)
	}
	if c.RowsWritten() != 1 || c.RowsRead() != 1 {
		t.Fatalf("counters read=%d written=%d", c.RowsRead(), c.RowsWritten())
	}
}

// splitCases are the splitter's table; FuzzSplitStatements starts from them.
var splitCases = []struct {
	name string
	in   string
	want []string
}{
	{"one", "SELECT 1", []string{"SELECT 1"}},
	{"two", "SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
	{"string", "SELECT ';'; SELECT 'it''s;'", []string{"SELECT ';'", "SELECT 'it''s;'"}},
	{"ident", `SELECT "a;b", [c;d], ` + "`e;f`", []string{`SELECT "a;b", [c;d], ` + "`e;f`"}},
	{"comments", "SELECT 1 -- x;y\n; /* ; */ SELECT 2", []string{"SELECT 1 -- x;y", "/* ; */ SELECT 2"}},
	{"trigger", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1; DELETE FROM v; END; SELECT 1",
		[]string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1; DELETE FROM v; END", "SELECT 1"}},
	{"temp trigger", "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
		[]string{"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"}},
	{"empty", " ; ;", nil},
}

func TestSplitStatements(t *testing.T) {
	for _, tc := range splitCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitStatements(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
	if _, err := splitStatements("SELECT 'open"); !errors.Is(err, ErrSQL) {
		t.Fatalf("unterminated string: %v", err)
	}
}

func TestExplicitTransactionsBecomeSavepoints(t *testing.T) {
	s := openTest(t, Config{})
	mustExec(t, s, "CREATE TABLE acc (id TEXT PRIMARY KEY, bal INTEGER)")
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "INSERT INTO acc VALUES ('a', 10)")
	mustExec(t, s, "BEGIN")
	mustExec(t, s, "UPDATE acc SET bal = bal - 100 WHERE id = 'a'")
	mustExec(t, s, "ROLLBACK")
	mustExec(t, s, "BEGIN TRANSACTION")
	mustExec(t, s, "UPDATE acc SET bal = bal + 5 WHERE id = 'a'")
	mustExec(t, s, "SAVEPOINT inner1")
	mustExec(t, s, "UPDATE acc SET bal = 0")
	mustExec(t, s, "ROLLBACK TO inner1")
	mustExec(t, s, "COMMIT")
	if _, err := s.Exec("COMMIT"); !errors.Is(err, ErrSQL) {
		t.Fatalf("COMMIT with nothing open: %v", err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	var bal int64
	if err := mustExec(t, s, "SELECT bal FROM acc WHERE id='a'").ScanOne(&bal); err != nil || bal != 15 {
		t.Fatalf("bal = %d, %v", bal, err)
	}
}

func TestEventRollbackAndTransaction(t *testing.T) {
	s := openTest(t, Config{})
	mustExec(t, s, "CREATE TABLE t (v INTEGER)")
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "INSERT INTO t VALUES (1)")
	if err := s.Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := mustExec(t, s, "SELECT count(*) FROM t").Raw()[0][0]; n != int64(0) {
		t.Fatalf("rows after rollback: %v", n)
	}
	if _, ok, _ := s.Get("k"); ok {
		t.Fatal("kv write survived rollback")
	}
	err := s.Transaction(func() error {
		mustExec(t, s, "INSERT INTO t VALUES (2)")
		return errors.New("boom")
	})
	if err == nil || err.Error() != "boom" {
		t.Fatalf("Transaction error = %v", err)
	}
	func() {
		defer func() { recover() }()
		s.Transaction(func() error {
			mustExec(t, s, "INSERT INTO t VALUES (3)")
			panic("handler panic")
		})
	}()
	if err := s.Transaction(func() error { _, err := s.Exec("INSERT INTO t VALUES (4)"); return err }); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, s, "SELECT v FROM t").Raw(); !reflect.DeepEqual(got, [][]any{{int64(4)}}) {
		t.Fatalf("rows = %v", got)
	}
}

func TestSandbox(t *testing.T) {
	s := openTest(t, Config{StatementTimeout: 200 * time.Millisecond})
	mustExec(t, s, "CREATE TABLE t (v)")
	if err := s.Put("k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sql  string
		args []any
		want error
	}{
		{"attach", "ATTACH DATABASE '/tmp/x.db' AS x", nil, ErrNotAuthorized},
		{"detach", "DETACH DATABASE main", nil, ErrNotAuthorized},
		{"load_extension", "SELECT load_extension('x')", nil, ErrNotAuthorized},
		{"journal pragma", "PRAGMA journal_mode = DELETE", nil, ErrNotAuthorized},
		{"synchronous pragma", "PRAGMA synchronous = OFF", nil, ErrNotAuthorized},
		{"writable_schema", "PRAGMA writable_schema = ON", nil, ErrNotAuthorized},
		{"max_page_count", "PRAGMA max_page_count = 1000000000", nil, ErrNotAuthorized},
		{"set page_size", "PRAGMA page_size = 512", nil, ErrNotAuthorized},
		{"read kv", "SELECT * FROM _dura_kv", nil, ErrNotAuthorized},
		{"write kv", "DELETE FROM _dura_kv", nil, ErrNotAuthorized},
		{"create reserved", "CREATE TABLE _dura_x (v)", nil, ErrNotAuthorized},
		{"create reserved mixed case", "CREATE TABLE _DURA_x (v)", nil, ErrNotAuthorized},
		{"trigger on kv", "CREATE TRIGGER tr AFTER INSERT ON _dura_kv BEGIN SELECT 1; END", nil, ErrNotAuthorized},
		{"index on kv", "CREATE INDEX i ON _dura_kv(value)", nil, ErrNotAuthorized},
		{"drop kv", "DROP TABLE _dura_kv", nil, ErrNotAuthorized},
		{"reserved savepoint", "SAVEPOINT _dura_sp1", nil, ErrNotAuthorized},
		{"sqlite_master write", "DELETE FROM sqlite_master", nil, ErrNotAuthorized},
		{"huge zeroblob", "SELECT zeroblob(100000000)", nil, ErrTooLarge},
		{"huge randomblob", "SELECT length(randomblob(3000000))", nil, ErrTooLarge},
		{"endless cte", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c", nil, ErrTimeout},
		{"long statement", "SELECT '" + strings.Repeat("x", MaxStatementBytes) + "'", nil, ErrTooLarge},
		{"too many params", "SELECT 1", make([]any, MaxParams+1), ErrTooLarge},
		{"big param", "SELECT ?", []any{strings.Repeat("x", MaxValueBytes+1)}, ErrTooLarge},
		{"bad param type", "SELECT ?", []any{struct{}{}}, ErrBadRequest},
		{"too many columns", "CREATE TABLE wide (" + wideCols(MaxColumns+1) + ")", nil, ErrTooLarge},
		{"syntax", "SELEKT 1", nil, ErrSQL},
		{"empty", "  ", nil, ErrBadRequest},
		{"constraint", "CREATE TABLE u (id PRIMARY KEY); INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)", nil, ErrConstraint},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Exec(tc.sql, tc.args...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	for _, ok := range []string{"PRAGMA table_info(t)", "PRAGMA foreign_key_list(t)", "PRAGMA integrity_check", "PRAGMA page_count", "SELECT name FROM sqlite_master"} {
		if _, err := s.Exec(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	if v, ok, err := s.Get("k"); err != nil || !ok || string(v) != "1" {
		t.Fatalf("kv after sandbox attacks: %q %v %v", v, ok, err)
	}
}

func wideCols(n int) string {
	cols := make([]string, n)
	for i := range cols {
		cols[i] = "c" + strings.Repeat("x", 1) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
	}
	return strings.Join(cols, ", ")
}

func TestStorageFullWritesNothing(t *testing.T) {
	s := openTest(t, Config{MaxBytes: 64 * 1024})
	mustExec(t, s, "CREATE TABLE t (v BLOB)")
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "INSERT INTO t VALUES (randomblob(1000))")
	_, err := s.Exec("INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 200) SELECT x FROM c)")
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("err = %v, want storage full", err)
	}
	if err := s.Commit(); err == nil {
		// Either SQLite kept the transaction (the statement alone was
		// undone) or it rolled it back; a commit must not lose the fact.
		if n := mustExec(t, s, "SELECT count(*) FROM t").Raw()[0][0]; n != int64(1) {
			t.Fatalf("rows after failed insert = %v", n)
		}
	}
	_ = s.Rollback()
	if n := mustExec(t, s, "SELECT count(*) FROM t").Raw()[0][0]; n != int64(0) && n != int64(1) {
		t.Fatalf("partial write kept: %v rows", n)
	}
}

func TestDatabaseSize(t *testing.T) {
	s := openTest(t, Config{})
	before, err := s.DatabaseSize()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE TABLE t (v BLOB); INSERT INTO t VALUES (randomblob(100000))")
	after, _ := s.DatabaseSize()
	if after < before+100000 {
		t.Fatalf("size %d -> %d", before, after)
	}
	mustExec(t, s, "DELETE FROM t")
	freed, _ := s.DatabaseSize()
	if freed >= after {
		t.Fatalf("freed pages still counted: %d >= %d", freed, after)
	}
}

// goodKeys and badKeys are keys the KV accepts and refuses; FuzzKV starts
// from them.
var (
	goodKeys = []string{"a", "b1", "b2", "b3", "c", "\u00e9", "k/", "..", "%2F", strings.Repeat("k", MaxKeyBytes), "\U0010FFFF"}
	badKeys  = []string{"", strings.Repeat("k", MaxKeyBytes+1), "a\x00b", "\xff\xfe"}
)

func TestKV(t *testing.T) {
	s := openTest(t, Config{})
	if _, ok, err := s.Get("missing"); ok || err != nil {
		t.Fatalf("get on empty store: %v %v", ok, err)
	}
	if got, err := s.List(ListOptions{}); len(got) != 0 || err != nil {
		t.Fatalf("list on empty store: %v %v", got, err)
	}
	for _, k := range []string{"a", "b1", "b2", "b3", "c", "\u00e9"} {
		if err := s.Put(k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put("a", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Get("a"); string(v) != "new" {
		t.Fatalf("overwrite: %q", v)
	}
	keys := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Key)
		}
		return out
	}
	cases := []struct {
		name string
		o    ListOptions
		want []string
	}{
		{"all", ListOptions{}, []string{"a", "b1", "b2", "b3", "c", "\u00e9"}},
		{"prefix", ListOptions{Prefix: "b"}, []string{"b1", "b2", "b3"}},
		{"start", ListOptions{Start: "b2"}, []string{"b2", "b3", "c", "\u00e9"}},
		{"startAfter", ListOptions{StartAfter: "b2"}, []string{"b3", "c", "\u00e9"}},
		{"end", ListOptions{End: "b2"}, []string{"a", "b1"}},
		{"reverse limit", ListOptions{Reverse: true, Limit: 2}, []string{"\u00e9", "c"}},
		{"prefix reverse", ListOptions{Prefix: "b", Reverse: true, Limit: 2}, []string{"b3", "b2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.List(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys(got), tc.want) {
				t.Fatalf("got %q want %q", keys(got), tc.want)
			}
		})
	}
	n, err := s.DeleteMany([]string{"b1", "b2", "nope"})
	if err != nil || n != 2 {
		t.Fatalf("DeleteMany = %d, %v", n, err)
	}
	m, _ := s.GetMany([]string{"a", "b1", "c"})
	if len(m) != 2 {
		t.Fatalf("GetMany = %v", m)
	}
	for _, bad := range badKeys {
		if err := s.Put(bad, []byte("x")); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if err := s.Put("big", make([]byte, MaxValueBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big value: %v", err)
	}
}

func TestDeleteAll(t *testing.T) {
	s := openTest(t, Config{})
	mustExec(t, s, `CREATE TABLE p (id INTEGER PRIMARY KEY AUTOINCREMENT);
		CREATE TABLE c (pid INTEGER REFERENCES p(id) ON DELETE CASCADE);
		CREATE INDEX ci ON c(pid); CREATE VIEW v AS SELECT * FROM p;
		CREATE TRIGGER tr AFTER INSERT ON p BEGIN INSERT INTO c VALUES (new.id); END;
		INSERT INTO p DEFAULT VALUES`)
	s.Put("k", []byte("v"))
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, s, "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'").Raw(); len(got) != 0 {
		t.Fatalf("left behind: %v", got)
	}
	if _, ok, _ := s.Get("k"); ok {
		t.Fatal("kv survived DeleteAll")
	}
	mustExec(t, s, "CREATE TABLE p (v)")
}

func TestExportImport(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Config{Path: filepath.Join(dir, "a.db")})
	mustExec(t, s, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('committed')")
	s.Put("k", []byte("kv"))
	// An open event's writes are not part of the export.
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "INSERT INTO t VALUES ('uncommitted')")
	var buf bytes.Buffer
	if _, err := Export(s.Path(), &buf); err != nil {
		t.Fatal(err)
	}
	s.Rollback()
	src := filepath.Join(dir, "upload.db")
	if err := os.WriteFile(src, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ValidateImport(src, 0); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "b.db")
	if err := ReplaceFile(dst, src); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, Config{Path: dst})
	if got := mustExec(t, b, "SELECT v FROM t").Raw(); !reflect.DeepEqual(got, [][]any{{"committed"}}) {
		t.Fatalf("imported rows = %v", got)
	}
	if v, ok, _ := b.Get("k"); !ok || string(v) != "kv" {
		t.Fatal("kv not imported")
	}

	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, []byte("not a database at all, just text"), 0o600)
	if err := ValidateImport(bad, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage import: %v", err)
	}
	// A file carrying a reserved table of its own is refused.
	evil := filepath.Join(dir, "evil.db")
	e, err := Open(Config{Path: evil})
	if err != nil {
		t.Fatal(err)
	}
	e.execInternal("CREATE TABLE _dura_evil (v)")
	e.Close()
	if err := ValidateImport(evil, 0); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("reserved table import: %v", err)
	}
	if err := ValidateImport(src2(t, buf.Bytes()), 100); !errors.Is(err, ErrStorageFull) {
		t.Fatalf("oversized import: %v", err)
	}
}

func src2(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "x.db")
	os.WriteFile(p, b, 0o600)
	return p
}

func TestSchemaVersion(t *testing.T) {
	s := openTest(t, Config{})
	if v, err := s.SchemaVersion(); v != 0 || err != nil {
		t.Fatalf("fresh version %d %v", v, err)
	}
	s.RecordSchemaVersion(1, time.Now())
	s.RecordSchemaVersion(2, time.Now())
	if v, _ := s.SchemaVersion(); v != 2 {
		t.Fatalf("version %d", v)
	}
	if _, err := s.Exec("SELECT * FROM _dura_schema_version"); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("user read of version table: %v", err)
	}
}

func TestScanOverflowIsAnError(t *testing.T) {
	s := openTest(t, Config{})
	var n int64
	if err := mustExec(t, s, "SELECT 9223372036854775807 + 1").ScanOne(&n); err == nil {
		t.Fatalf("overflowed sum scanned as %d without error", n)
	}
}

func TestIdentity(t *testing.T) {
	s := openTest(t, Config{})
	if _, _, err := ReadIdentity(s.Path()); err == nil {
		t.Fatal("identity read from a file that has none")
	}
	if err := s.SetIdentity("chat", "room/1"); err != nil {
		t.Fatal(err)
	}
	class, name, err := ReadIdentity(s.Path())
	if err != nil || class != "chat" || name != "room/1" {
		t.Fatalf("identity %q %q %v", class, name, err)
	}
	if _, err := s.Exec("SELECT * FROM _dura_object"); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("user read of identity: %v", err)
	}
}

// completeCases are Complete's table; FuzzSplitStatements starts from them.
var completeCases = []struct {
	in   string
	want bool
}{
	{"SELECT 1;", true},
	{"SELECT 1", false},
	{"SELECT 1; -- done", true},
	{"SELECT ';'", false},
	{"SELECT 1; SELECT 2", false},
	{"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;", false},
	{"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;", true},
	{"SELECT 1; /* open", false},
	{"  ;", false},
	{"", false},
	{"SELECT 1;  \n", true},
	{"SELECT 'a;';", true},
	{"SELECT 'it''s';", true},
	{`SELECT "x;"`, false},
	{"SELECT [a;b];", true},
	{"SELECT 1 /* ; */", false},
	{"SELECT 1 /* ; */;", true},
	{"create temp trigger t after insert on x begin select 1; end ;", true},
	{"CREATE TABLE trigger_log (a); ", true},
}

func TestComplete(t *testing.T) {
	for _, tc := range completeCases {
		if got := Complete(tc.in); got != tc.want {
			t.Errorf("Complete(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCachedInternalStatementsGiveNoAccess(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.SetIdentity("db", "real"); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	defer s.Commit()
	if err := s.Put("secret", []byte("hunter2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get("secret"); err != nil { // the store caches its statements
		t.Fatal(err)
	}
	if err := s.SetIdentity("db", "real"); err != nil {
		t.Fatal(err)
	}
	// The very texts the store just ran must still be refused to users.
	for _, q := range []string{
		"SELECT value FROM _dura_kv WHERE key = ?",
		"INSERT INTO _dura_kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
		"INSERT OR REPLACE INTO _dura_object (k, v) VALUES ('class', ?), ('name', ?)",
	} {
		args := []any{"secret", []byte("pwned")}[:strings.Count(q, "?")]
		if _, err := s.Exec(q, args...); !errors.Is(err, ErrNotAuthorized) {
			t.Errorf("%q: %v", q, err)
		}
	}
	if v, _, _ := s.Get("secret"); string(v) != "hunter2" {
		t.Fatalf("secret is now %q", v)
	}
}

func TestNothingRunsAfterSQLiteAbortsTheEvent(t *testing.T) {
	s := openTest(t, Config{MaxBytes: 64 * 1024, StatementTimeout: 200 * time.Millisecond})
	mustExec(t, s, "CREATE TABLE t (v)")
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "INSERT INTO t VALUES ('A')")
	_, err := s.Exec("INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 500) SELECT x FROM c)")
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("big insert: %v", err)
	}
	// Whether SQLite undid just the statement or the whole transaction,
	// nothing may commit on its own behind the event's back.
	s.Exec("INSERT INTO t VALUES ('B')")
	if err := s.Commit(); err != nil && !errors.Is(err, ErrStorageFull) {
		t.Fatalf("commit after storage full: %v", err)
	}
	got := mustExec(t, s, "SELECT v FROM t ORDER BY v").Raw()
	if len(got) == 1 {
		t.Fatalf("half the event committed: %v", got)
	}
}

func TestResultSizeIsBounded(t *testing.T) {
	s := openTest(t, Config{})
	_, err := s.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100) SELECT zeroblob(1000000) FROM c")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("100 MB result: %v", err)
	}
}

func TestKVAfterUserRollbackTo(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "SAVEPOINT a")
	if err := s.Put("k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "ROLLBACK TO a")
	if err := s.Put("k", []byte("2")); err != nil {
		t.Fatalf("put after ROLLBACK TO: %v", err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Get("k"); string(v) != "2" {
		t.Fatalf("k = %q", v)
	}
}

func TestDeleteAllKeepsIdentity(t *testing.T) {
	s := openTest(t, Config{})
	if err := s.SetIdentity("db", "me"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE TABLE t (v)")
	if err := s.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	if class, name, err := ReadIdentity(s.Path()); err != nil || class != "db" || name != "me" {
		t.Fatalf("identity after DeleteAll: %q %q %v", class, name, err)
	}
}

// An event whose CREATE ... IF NOT EXISTS or DROP ... IF EXISTS changed
// nothing is not a write: an object's constructor runs them on every
// activation, and a read must not need what a write does.
func TestNoOpSchemaStatementsAreNotWrites(t *testing.T) {
	s := openTest(t, Config{})
	mustExec(t, s, "CREATE TABLE kept (k TEXT PRIMARY KEY, v INTEGER)")
	mustExec(t, s, "CREATE INDEX kept_v ON kept (v)")
	for _, tc := range []struct {
		name  string
		stmts []string
		dirty bool
	}{
		{"table exists", []string{"CREATE TABLE IF NOT EXISTS kept (k TEXT PRIMARY KEY, v INTEGER);"}, false},
		{"multi-line, index exists", []string{"create index\n  if not exists kept_v on kept (v)"}, false},
		{"drop of nothing", []string{"DROP TABLE IF EXISTS never_made"}, false},
		{"then a read", []string{"CREATE TABLE IF NOT EXISTS kept (k TEXT)", "SELECT * FROM kept"}, false},
		{"table made", []string{"CREATE TABLE IF NOT EXISTS fresh (x)"}, true},
		{"a write after", []string{"CREATE TABLE IF NOT EXISTS kept (k TEXT)", "INSERT INTO kept VALUES ('a', 1)"}, true},
		{"drop of something", []string{"DROP INDEX IF EXISTS kept_v"}, true},
		{"plain create", []string{"CREATE TABLE other (x)"}, true},
		{"two statements in one", []string{"CREATE TABLE IF NOT EXISTS kept (k TEXT); CREATE TABLE IF NOT EXISTS fresh2 (x)"}, true},
	} {
		if err := s.Begin(); err != nil {
			t.Fatal(err)
		}
		for _, q := range tc.stmts {
			mustExec(t, s, q)
		}
		if got := s.Dirty(); got != tc.dirty {
			t.Errorf("%s: Dirty() = %v, want %v", tc.name, got, tc.dirty)
		}
		s.Rollback()
	}
}
