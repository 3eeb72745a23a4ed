package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/internal/testutil/nodetest"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// testNode is a node runtime behind an in-process API server.
type testNode struct {
	rt *node.Runtime
	ts *httptest.Server
	nd *nodetest.Node
}

// echoObject answers every request with what it got, for "dura call".
type echoObject struct{}

func (echoObject) Fetch(w http.ResponseWriter, r *http.Request) error {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Echo", "yes")
	if r.URL.Path == "/teapot" {
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, "short and stout")
		return nil
	}
	fmt.Fprintf(w, "%s %s?%s ct=%q h=%q body=%q", r.Method, r.URL.Path, r.URL.RawQuery,
		r.Header.Get("Content-Type"), r.Header.Get("X-Test"), body)
	return nil
}

// whoami answers "NAME ROWS KV" from its own storage: the object's name,
// the rows of its table t (-1 without one) and the JSON of its KV key k.
type whoami struct{ st *node.State }

func newWhoami(st *node.State) (node.Object, error) { return whoami{st}, nil }

func (o whoami) Fetch(w http.ResponseWriter, r *http.Request) error {
	rows := int64(-1)
	if cur, err := o.st.Storage().Exec("SELECT count(*) FROM t"); err == nil {
		cur.ScanOne(&rows)
	}
	v, _, err := o.st.Storage().Get("k")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %d %s", o.st.Name(), rows, v)
	return nil
}

func startNode(t *testing.T, adminToken string) *testNode {
	t.Helper()
	nd := nodetest.StartNode(t, nodetest.Options{AdminToken: adminToken, Register: func(rt *node.Runtime) error {
		if err := rt.Register("echo", func(*node.State) (node.Object, error) { return echoObject{}, nil }); err != nil {
			return err
		}
		return rt.Register("whoami", newWhoami)
	}})
	return &testNode{rt: nd.RT, ts: nd.Server, nd: nd}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runEnv runs the CLI in-process with the given environment and stdin.
func runEnv(t *testing.T, vars map[string]string, stdin string, args ...string) result {
	t.Helper()
	return runStreams(t, vars, stdin, false, args...)
}

// runStreams is runEnv with stdin and stdout taken for terminals when tty.
func runStreams(t *testing.T, vars map[string]string, stdin string, tty bool, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }, stdinTTY: tty, stdoutTTY: tty}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, env, args)
	return result{code, out.String(), errb.String()}
}

// cli runs a command against n (through DURA_ADDR).
func (n *testNode) cli(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, map[string]string{"DURA_ADDR": n.ts.URL}, "", args...)
}

func (n *testNode) cliIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, map[string]string{"DURA_ADDR": n.ts.URL}, stdin, args...)
}

// must fails the test unless the command exited 0.
func must(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("command failed: %v", r)
	}
	return r
}

func TestHelpAndUnknown(t *testing.T) {
	mine := []string{"sql", "call", "alarm", "kv", "status", "export", "import", "health", "objects"}
	for _, name := range mine {
		t.Run(name, func(t *testing.T) {
			if _, ok := commands[name]; !ok {
				t.Fatalf("command %q is not registered", name)
			}
			r := runEnv(t, nil, "", name, "--help")
			if r.code != 0 {
				t.Fatalf("--help: %v", r)
			}
			if !strings.Contains(r.stderr, "Usage: dura "+name) || !strings.Contains(r.stderr, "-addr") {
				t.Fatalf("--help output lacks the synopsis or the common flags: %v", r)
			}
		})
	}
	r := runEnv(t, nil, "", "nosuch")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "nosuch"`) {
		t.Fatalf("unknown command: %v", r)
	}
	r = runEnv(t, nil, "", "help")
	for _, name := range mine {
		if !strings.Contains(r.stdout, "  "+name+" ") {
			t.Errorf("dura help does not list %s:\n%s", name, r.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	n := startNode(t, "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"sql no args", []string{"sql"}, "CLASS/NAME"},
		{"sql no slash", []string{"sql", "db", "SELECT 1"}, `"db" is not CLASS/NAME`},
		{"sql empty name", []string{"sql", "db/", "SELECT 1"}, "is not CLASS/NAME"},
		{"sql empty class", []string{"sql", "/x", "SELECT 1"}, "is not CLASS/NAME"},
		{"sql too many", []string{"sql", "db/x", "SELECT 1", "more"}, "got 3 arguments"},
		{"sql bad flag", []string{"sql", "--nosuch", "db/x", "SELECT 1"}, "flag provided but not defined"},
		{"sql param without sql", []string{"sql", "--param", "1", "db/x"}, "--param needs SQL"},
		{"call no name", []string{"call", "db"}, "is not CLASS/NAME"},
		{"call empty name", []string{"call", "db//path"}, "no NAME"},
		{"call bad header", []string{"call", "-H", "nocolon", "db/x"}, "is not 'Name: value'"},
		{"alarm no verb", []string{"alarm", "db/x"}, "get|set|delete"},
		{"alarm bad verb", []string{"alarm", "fire", "db/x"}, `unknown action "fire"`},
		{"alarm set no time", []string{"alarm", "set", "db/x"}, "--at TIME or --in"},
		{"alarm set both", []string{"alarm", "set", "--at", "0", "--in", "1s", "db/x"}, "not both"},
		{"alarm bad at", []string{"alarm", "set", "--at", "tomorrow", "db/x"}, "neither RFC3339"},
		{"alarm get with in", []string{"alarm", "get", "--in", "1s", "db/x"}, "go with set"},
		{"kv bad verb", []string{"kv", "scan", "db/x"}, `unknown action "scan"`},
		{"kv get no key", []string{"kv", "get", "db/x"}, "get wants 2 arguments"},
		{"kv put invalid json", []string{"kv", "put", "db/x", "k", "not json"}, "must be JSON"},
		{"kv put invalid json stdin", []string{"kv", "put", "db/x", "k", "-"}, "must be JSON"},
		{"kv negative limit", []string{"kv", "list", "--limit", "-1", "db/x"}, "must not be negative"},
		{"status args", []string{"status", "extra"}, "unexpected arguments"},
		{"export no object", []string{"export"}, "CLASS/NAME"},
		{"import no file", []string{"import", "db/x"}, "CLASS/NAME FILE"},
		{"health args", []string{"health", "x"}, "unexpected arguments"},
		{"objects bad limit", []string{"objects", "--limit", "0"}, "1..1000"},
		{"bad env value", []string{"objects"}, "DURA_LIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"DURA_ADDR": n.ts.URL}
			if tc.name == "bad env value" {
				vars["DURA_LIMIT"] = "many"
			}
			r := runEnv(t, vars, "{oops", tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want exit 2 and %q: %v", tc.want, r)
			}
		})
	}
	// Nothing reached the server: no object got storage.
	r := must(t, n.cli(t, "objects"))
	if strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("usage errors created objects:\n%s", r.stdout)
	}
}

func TestSQLOneShot(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "db/shop", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB)"))
	r := must(t, n.cli(t, "sql", "db/shop", "INSERT INTO items (name, price) VALUES ('apple', 1.5), ('banana', NULL)"))
	if want := "(0 rows, read 0, written 2, changes 2, last insert id 2)\n"; !strings.HasSuffix(r.stdout, want) {
		t.Fatalf("insert output %q, want suffix %q", r.stdout, want)
	}
	r = must(t, n.cli(t, "sql", "db/shop", "SELECT id, name, price FROM items ORDER BY id"))
	want := "" +
		" id | name   | price\n" +
		"----+--------+-------\n" +
		"  1 | apple  |   1.5\n" +
		"  2 | banana | NULL\n" +
		"(2 rows, read 2, written 0)\n"
	if r.stdout != want {
		t.Fatalf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	// Flags after the positional arguments; several statements, the last
	// one's rows shown.
	r = must(t, n.cli(t, "sql", "db/shop", "UPDATE items SET price = 2 WHERE id = 2; SELECT count(*) AS n FROM items WHERE price > 1", "--json"))
	var resp rpc.SQLResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("--json output is not the API answer: %v\n%s", err, r.stdout)
	}
	if len(resp.Results) != 1 || len(resp.Results[0].Rows) != 1 || fmt.Sprint(resp.Results[0].Rows[0][0]) != "2" ||
		resp.Results[0].Columns[0] != "n" {
		t.Fatalf("--json results: %+v", resp.Results)
	}

	// SQL from stdin.
	r = must(t, n.cliIn(t, "SELECT name FROM items\nWHERE id = 1;\n", "sql", "db/shop", "-"))
	if !strings.Contains(r.stdout, " apple\n(1 row, read 1, written 0)\n") {
		t.Fatalf("stdin SQL output:\n%s", r.stdout)
	}

	// A SELECT with no rows still shows the header.
	r = must(t, n.cli(t, "sql", "db/shop", "SELECT name FROM items WHERE id = 99"))
	if r.stdout != " name\n------\n(0 rows, read 0, written 0)\n" {
		t.Fatalf("empty result:\n%q", r.stdout)
	}
}

func TestSQLParams(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "db/p", "CREATE TABLE v (i, t, b, f, n, s)"))
	must(t, n.cli(t, "sql", "db/p", "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)",
		"--param", "42", "--param", `"text"`, "--param", `{"$base64":"AAE="}`,
		"--param", "1.25", "--param", "null", "--param", "not json"))
	r := must(t, n.cli(t, "sql", "db/p", "--json", "SELECT i, typeof(i), t, b, typeof(b), f, n, s FROM v"))
	var resp struct {
		Results []struct {
			Rows [][]json.RawMessage `json:"rows"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range resp.Results[0].Rows[0] {
		got = append(got, string(v))
	}
	want := []string{`42`, `"integer"`, `"text"`, `{"$base64":"AAE="}`, `"blob"`, `1.25`, `null`, `"not json"`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("row %v, want %v", got, want)
	}
	// The table shows the BLOB as hex; long BLOBs are cut.
	r = must(t, n.cli(t, "sql", "db/p", "SELECT b, zeroblob(100) AS big FROM v"))
	if !strings.Contains(r.stdout, " x'0001' | x'"+strings.Repeat("00", 32)+"'... (100 bytes)\n") {
		t.Fatalf("BLOB cells:\n%s", r.stdout)
	}
	// The BLOB parameter matches the stored BLOB.
	r = must(t, n.cli(t, "sql", "db/p", "SELECT count(*) FROM v WHERE b = ?", "--param", `{"$base64":"AAE="}`))
	if !strings.Contains(r.stdout, "        1\n") {
		t.Fatalf("BLOB parameter did not match:\n%s", r.stdout)
	}
}

func TestSQLErrors(t *testing.T) {
	n := startNode(t, "")
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"reserved table", "SELECT * FROM _dura_kv", "NOT_AUTHORIZED (403): names beginning _dura_ are reserved\n"},
		{"syntax", "SELEC 1", "SQL_ERROR (400): near \"SELEC\": syntax error\n"},
		{"missing table", "SELECT * FROM nope", "SQL_ERROR (400): no such table: nope\n"},
		{"second of two", "SELECT 1; SELECT * FROM nope", "SQL_ERROR (400): statement 2: no such table: nope\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := n.cli(t, "sql", "db/e", tc.sql)
			if r.code != 1 || r.stderr != "dura sql: "+tc.want {
				t.Fatalf("want exit 1 and %q: %v", tc.want, r)
			}
		})
	}
	r := n.cli(t, "sql", "nosuchclass/e", "SELECT 1")
	if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_CLASS (404)") {
		t.Fatalf("unknown class: %v", r)
	}
}

func TestSQLInteractive(t *testing.T) {
	n := startNode(t, "")
	in := strings.Join([]string{
		"",
		"CREATE TABLE notes (",
		"  id INTEGER PRIMARY KEY,",
		"  body TEXT -- the text; semicolons in comments do not end it",
		");",
		"CREATE INDEX notes_body ON notes(body);",
		"INSERT INTO notes (body) VALUES ('a;b'), ('c');",
		".tables",
		".schema notes",
		"SELECT nope FROM notes;",
		".bogus",
		"SELECT id, body",
		"  FROM notes ORDER BY id;",
		".help",
		".quit",
		"SELECT 'after quit';",
	}, "\n") + "\n"
	r := runStreams(t, map[string]string{"DURA_ADDR": n.ts.URL}, in, true, "sql", "db/notes")
	if r.code != 0 {
		t.Fatalf("session: %v", r)
	}
	for _, want := range []string{
		"dura db/notes> ",
		"          ...> ",
		"dura db/notes> notes\n",
		"CREATE TABLE notes (\n  id INTEGER PRIMARY KEY,",
		"CREATE INDEX notes_body ON notes(body);\n",
		" id | body\n----+------\n  1 | a;b\n  2 | c\n(2 rows, read 2, written 0)\n",
		".tables          list the tables",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "after quit") || strings.Contains(r.stdout, "_dura_") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	for _, want := range []string{"Error: SQL_ERROR (400): ", "Error: unknown command .bogus"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}

	// EOF ends the session; an unterminated last statement still runs.
	r = n.cliIn(t, "SELECT count(*) AS n FROM notes", "sql", "db/notes")
	if r.code != 0 || !strings.Contains(r.stdout, " n\n---\n 2\n") {
		t.Fatalf("EOF session: %v", r)
	}
}

func TestParseParam(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"42", "json.Number 42"},
		{"-7", "json.Number -7"},
		{`"x y"`, "string x y"},
		{"null", "<nil> <nil>"},
		{"true", "bool true"},
		{"hello", "string hello"},
		{"1 2", "string 1 2"},
		{"", "string "},
	} {
		v := parseParam(tc.in)
		if got := fmt.Sprintf("%T %v", v, v); got != tc.want {
			t.Errorf("parseParam(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseCallTarget(t *testing.T) {
	for _, tc := range []struct {
		in                string
		class, name, path string
	}{
		{"counter/a", "counter", "a", "/"},
		{"counter/a/", "counter", "a", "/"},
		{"counter/a/increment?by=2", "counter", "a", "/increment?by=2"},
		{"chat/room%2F1/messages/7", "chat", "room/1", "/messages/7"},
		{"c/n?q=1/2", "c", "n", "/?q=1/2"},
	} {
		class, name, path, err := parseCallTarget(tc.in)
		if err != nil || class != tc.class || name != tc.name || path != tc.path {
			t.Errorf("parseCallTarget(%q) = %q, %q, %q, %v; want %q, %q, %q", tc.in, class, name, path, err, tc.class, tc.name, tc.path)
		}
	}
}

// TestObjectNamesAddressedAlike: every command that takes CLASS/NAME
// reads a name the same way, so "a%2Fb" is the object "a/b" in each.
func TestObjectNamesAddressedAlike(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "whoami/a%2Fb", "CREATE TABLE t (x); INSERT INTO t VALUES (1)"))
	must(t, n.cli(t, "kv", "put", "whoami/a%2Fb", "k", `"v"`))
	must(t, n.cli(t, "alarm", "set", "--at", "2099-01-02T03:04:05Z", "whoami/a%2Fb"))
	if r := must(t, n.cli(t, "call", "whoami/a%2Fb/")); !strings.HasPrefix(r.stdout, `a/b 1 "v"`) {
		t.Fatalf("call reached another object: %q", r.stdout)
	}
	for _, args := range [][]string{
		{"sql", "whoami/a/b", "SELECT x FROM t"}, // an unescaped '/' is the name's where no path follows
		{"sql", "whoami/a%2Fb", "SELECT x FROM t"},
		{"kv", "get", "whoami/a/b", "k"},
		{"alarm", "get", "whoami/a%2fb"},
		{"export", "whoami/a%2Fb", filepath.Join(t.TempDir(), "a.db")},
	} {
		must(t, n.cli(t, args...))
	}
	if r := must(t, n.cli(t, "alarm", "get", "whoami/a/b")); !strings.Contains(r.stdout, "2099-01-02") {
		t.Fatalf("alarm get: %v", r)
	}
	file := filepath.Join(t.TempDir(), "b.db")
	must(t, n.cli(t, "export", "whoami/a%2Fb", file))
	must(t, n.cli(t, "import", "whoami/c%2Fd", file))
	if r := must(t, n.cli(t, "call", "whoami/c%2Fd")); !strings.HasPrefix(r.stdout, "c/d 1 ") {
		t.Fatalf("import went elsewhere: %q", r.stdout)
	}
	testutil.Poll(t, 5*time.Second, "objects a/b and c/d only", func() string {
		r := must(t, n.cli(t, "objects", "--class", "whoami", "--json"))
		var list rpc.ObjectList
		json.Unmarshal([]byte(r.stdout), &list)
		var names []string
		for _, o := range list.Objects {
			names = append(names, o.Name)
		}
		sort.Strings(names)
		if strings.Join(names, " ") != "a/b c/d" {
			return fmt.Sprintf("objects: %v", names)
		}
		return ""
	})
	for _, args := range [][]string{{"sql", "whoami/50%", "SELECT 1"}, {"call", "whoami/50%/x"}, {"kv", "list", "whoami/%zz"}} {
		if r := n.cli(t, args...); r.code != 2 || !strings.Contains(r.stderr, "%25") {
			t.Errorf("%q: want a usage error naming %%25: %v", args, r)
		}
	}
}

func TestCall(t *testing.T) {
	n := startNode(t, "")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"get", "", []string{"echo/a/hello?x=1"}, `GET /hello?x=1 ct="" h="" body=""`},
		{"post data", "", []string{"-d", `{"a":1}`, "echo/a/p"}, `POST /p? ct="application/json" h="" body="{\"a\":1}"`},
		{"put header", "", []string{"-X", "put", "-H", "X-Test: yes", "-H", "Content-Type: text/plain", "-d", "hi", "echo/a"},
			`PUT /? ct="text/plain" h="yes" body="hi"`},
		{"stdin body", "from stdin", []string{"echo/a", "-d", "-"}, `POST /? ct="" h="" body="from stdin"`},
		{"escaped name", "", []string{"echo/a%2Fb/x"}, `GET /x?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := must(t, n.cliIn(t, tc.stdin, append([]string{"call"}, tc.args...)...))
			if !strings.HasPrefix(r.stdout, tc.want) {
				t.Fatalf("got %q, want %q", r.stdout, tc.want)
			}
		})
	}

	// -d @file.
	file := filepath.Join(t.TempDir(), "body")
	os.WriteFile(file, []byte("file body"), 0o644)
	r := must(t, n.cli(t, "call", "-d", "@"+file, "echo/a"))
	if !strings.Contains(r.stdout, `body="file body"`) {
		t.Fatalf("@file: %v", r)
	}

	// -i shows the status line and headers, X-Dura-Node among them.
	r = must(t, n.cli(t, "call", "-i", "echo/a/x"))
	for _, want := range []string{"HTTP/1.1 200 OK\n", "X-Dura-Node: test\n", "X-Echo: yes\n", "\n\nGET /x?"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("-i output lacks %q:\n%s", want, r.stdout)
		}
	}

	// Error answers exit 1 with the code; class db has no handler.
	r = n.cli(t, "call", "-X", "POST", "-d", "{}", "db/x/anything")
	if r.code != 1 || !strings.Contains(r.stderr, "dura call: NOT_FOUND (404): ") {
		t.Fatalf("db call: %v", r)
	}
	r = n.cli(t, "call", "nosuch/x")
	if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_CLASS (404)") {
		t.Fatalf("unknown class: %v", r)
	}
	// A handler's own non-JSON error answer.
	r = n.cli(t, "call", "echo/a/teapot")
	if r.code != 1 || !strings.Contains(r.stderr, "(418): short and stout") {
		t.Fatalf("teapot: %v", r)
	}
}

func TestAlarm(t *testing.T) {
	n := startNode(t, "")
	r := must(t, n.cli(t, "alarm", "get", "db/a"))
	if r.stdout != "no alarm\n" {
		t.Fatalf("get: %q", r.stdout)
	}
	at := time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)
	want := fmt.Sprintf("2099-01-02T03:04:05.000Z (unix ms %d)\n", at.UnixMilli())
	for _, tc := range []struct{ name, at string }{
		{"rfc3339", "2099-01-02T03:04:05Z"},
		{"rfc3339 offset", "2099-01-02T05:04:05+02:00"},
		{"unix ms", fmt.Sprint(at.UnixMilli())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, n.cli(t, "alarm", "delete", "db/a"))
			r := must(t, n.cli(t, "alarm", "set", "db/a", "--at", tc.at))
			if r.stdout != want {
				t.Fatalf("set: %q, want %q", r.stdout, want)
			}
			r = must(t, n.cli(t, "alarm", "get", "db/a"))
			if r.stdout != want {
				t.Fatalf("get: %q, want %q", r.stdout, want)
			}
		})
	}
	before := time.Now().Add(time.Hour).UnixMilli()
	must(t, n.cli(t, "alarm", "set", "--in", "1h", "db/a"))
	got, err := rpc.NewClient(n.ts.URL, nil).GetAlarm(context.Background(), "db", "a")
	if err != nil || got == nil || *got < before || *got > time.Now().Add(time.Hour).UnixMilli() {
		t.Fatalf("--in 1h set %v, %v", got, err)
	}
	r = must(t, n.cli(t, "alarm", "delete", "db/a"))
	if r.stdout != "no alarm\n" {
		t.Fatalf("delete: %q", r.stdout)
	}
	r = must(t, n.cli(t, "alarm", "get", "db/a"))
	if r.stdout != "no alarm\n" {
		t.Fatalf("get after delete: %q", r.stdout)
	}
}

func TestKV(t *testing.T) {
	n := startNode(t, "")
	for _, kv := range [][2]string{{"user/1", `{"name": "ann"}`}, {"user/2", `"bob"`}, {"user/3", `3`}, {"other", `[1, 2]`}} {
		must(t, n.cli(t, "kv", "put", "db/k", kv[0], kv[1]))
	}
	must(t, n.cliIn(t, " {\"from\":\"stdin\"}\n", "kv", "put", "db/k", "stdin", "-"))
	// A negative number is a value, not a flag.
	must(t, n.cli(t, "kv", "put", "db/k", "neg", "-5"))

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"get object", []string{"get", "db/k", "user/1"}, "{\"name\":\"ann\"}\n"},
		{"get stdin value", []string{"get", "db/k", "stdin"}, "{\"from\":\"stdin\"}\n"},
		{"get negative", []string{"get", "db/k", "neg"}, "-5\n"},
		{"list all", []string{"list", "db/k"}, "neg\t-5\nother\t[1,2]\nstdin\t{\"from\":\"stdin\"}\nuser/1\t{\"name\":\"ann\"}\nuser/2\t\"bob\"\nuser/3\t3\n"},
		{"list prefix", []string{"list", "db/k", "--prefix", "user/"}, "user/1\t{\"name\":\"ann\"}\nuser/2\t\"bob\"\nuser/3\t3\n"},
		{"list reverse limit", []string{"list", "--reverse", "--limit", "2", "db/k"}, "user/3\t3\nuser/2\t\"bob\"\n"},
		{"list range", []string{"list", "db/k", "--start", "other", "--end", "user/"}, "other\t[1,2]\nstdin\t{\"from\":\"stdin\"}\n"},
		{"list start-after", []string{"list", "db/k", "--start-after", "user/1"}, "user/2\t\"bob\"\nuser/3\t3\n"},
		{"list json", []string{"list", "db/k", "--prefix", "user/2", "--json"}, `{"entries":[{"key":"user/2","value":"bob"}]}` + "\n"},
		{"list json empty", []string{"list", "db/k", "--prefix", "zzz", "--json"}, `{"entries":[]}` + "\n"},
		{"delete", []string{"delete", "db/k", "user/2"}, "deleted\n"},
		{"delete again", []string{"delete", "db/k", "user/2"}, "no such key\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := must(t, n.cli(t, append([]string{"kv"}, tc.args...)...))
			if r.stdout != tc.want {
				t.Fatalf("got %q, want %q", r.stdout, tc.want)
			}
		})
	}
	r := n.cli(t, "kv", "get", "db/k", "user/2")
	if r.code != 1 || !strings.Contains(r.stderr, "NOT_FOUND (404)") {
		t.Fatalf("get deleted key: %v", r)
	}
}

func TestStatusAndHealth(t *testing.T) {
	n := startNode(t, "")
	r := must(t, n.cli(t, "status"))
	for _, want := range []string{"node:                test\n", "leader:              test\n", "epoch:               1\n", "partitions:          271\n",
		"replication factor:  1\n", "under-replicated:    0\n", "moves pending:       0\n", "history:             720h0m0s kept here, ",
		"NAME  HTTP  STATUS  PRIMARIES  REPLICAS\ntest  -     alive   271        0\n", "ready: yes\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = must(t, n.cli(t, "status", "--json"))
	var info rpc.ClusterInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Node != "test" || len(info.Members) != 1 {
		t.Fatalf("status --json: %v %+v\n%s", err, info, r.stdout)
	}
	must(t, n.cli(t, "health"))
	must(t, n.cli(t, "health", "--ready"))

	// A closing node is live but not ready.
	n.nd.Stop()
	must(t, n.cli(t, "health"))
	r = n.cli(t, "health", "--ready")
	if r.code != 1 || !strings.Contains(r.stderr, "not ready: OWNER_UNAVAILABLE (503)") {
		t.Fatalf("health --ready on a closed node: %v", r)
	}
	r = must(t, n.cli(t, "status"))
	if !strings.Contains(r.stdout, "ready: no (OWNER_UNAVAILABLE: ") {
		t.Fatalf("status of a closed node:\n%s", r.stdout)
	}

	// A server that is gone.
	n.ts.Close()
	for _, args := range [][]string{{"health"}, {"health", "--ready"}, {"status"}} {
		r = n.cli(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach "+n.ts.URL) {
			t.Fatalf("%v against a closed server: %v", args, r)
		}
	}
}

func TestExportImport(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "db/src", "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3)"))
	must(t, n.cli(t, "kv", "put", "db/src", "k", `"v"`))
	dir := t.TempDir()
	file := filepath.Join(dir, "src.db")
	r := must(t, n.cli(t, "export", "db/src", file))
	if !strings.Contains(r.stderr, "exported db/src to "+file) {
		t.Fatalf("export: %v", r)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("%s.tmp left behind: %v", file, err)
	}
	b, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(b, []byte("SQLite format 3\x00")) {
		t.Fatalf("export file: %v, %q", err, b[:min(len(b), 16)])
	}
	// To stdout, the same database.
	r = must(t, n.cli(t, "export", "db/src"))
	if !strings.HasPrefix(r.stdout, "SQLite format 3\x00") {
		t.Fatalf("export to stdout: %q", r.stdout[:min(len(r.stdout), 16)])
	}

	must(t, n.cli(t, "import", "db/dst", file))
	r = must(t, n.cli(t, "sql", "db/dst", "SELECT sum(x) AS s FROM t"))
	if !strings.Contains(r.stdout, " s\n---\n 6\n") {
		t.Fatalf("imported data:\n%s", r.stdout)
	}
	r = must(t, n.cli(t, "kv", "get", "db/dst", "k"))
	if r.stdout != "\"v\"\n" {
		t.Fatalf("imported KV: %q", r.stdout)
	}
	// From stdin, into a third object.
	must(t, n.cliIn(t, string(b), "import", "db/dst2", "-"))
	r = must(t, n.cli(t, "sql", "db/dst2", "SELECT count(*) AS c FROM t"))
	if !strings.Contains(r.stdout, " 3\n") {
		t.Fatalf("imported from stdin:\n%s", r.stdout)
	}

	// Errors: an object without storage, a file that is not SQLite.
	r = n.cli(t, "export", "db/never", filepath.Join(dir, "never.db"))
	if r.code != 1 || !strings.Contains(r.stderr, "NOT_FOUND (404)") {
		t.Fatalf("export of an empty object: %v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "never.db")); !os.IsNotExist(err) {
		t.Fatalf("failed export left a file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "never.db.tmp")); !os.IsNotExist(err) {
		t.Fatalf("failed export left its .tmp: %v", err)
	}
	r = n.cliIn(t, "not a database", "import", "db/dst", "-")
	if r.code != 1 || r.stderr == "" {
		t.Fatalf("import of garbage: %v", r)
	}
	r = n.cli(t, "import", "db/dst", filepath.Join(dir, "missing.db"))
	if r.code != 1 {
		t.Fatalf("import of a missing file: %v", r)
	}
}

func TestObjects(t *testing.T) {
	n := startNode(t, "")
	names := []string{"a", "b/c", "d", "e", "f"}
	for _, name := range names {
		must(t, n.cli(t, "kv", "put", "db/"+name, "k", "1"))
	}
	must(t, n.cli(t, "alarm", "set", "db/d", "--at", "2099-01-02T03:04:05Z"))
	// New objects reach the node's catalog in background batches.
	testutil.Poll(t, 5*time.Second, "objects all listed", func() string {
		if out := must(t, n.cli(t, "objects", "--limit", "10")).stdout; strings.Count(out, "\n") < 1+len(names) {
			return "listed:\n" + out
		}
		return ""
	})

	rows := func(out string) []string {
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID ") {
			t.Fatalf("no header:\n%s", out)
		}
		var got []string
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f[0]) != 12 || f[1] != "db" {
				t.Fatalf("row %q", l)
			}
			got = append(got, f[2])
		}
		return got
	}
	r := must(t, n.cli(t, "objects", "--limit", "2"))
	first := rows(r.stdout)
	if len(first) != 2 || !strings.Contains(r.stderr, "--cursor ") {
		t.Fatalf("first page: %v", r)
	}
	cursor := strings.Fields(strings.SplitAfter(r.stderr, "--cursor ")[1])[0]
	cursor = strings.TrimSuffix(cursor, ",")
	r = must(t, n.cli(t, "objects", "--limit", "2", "--cursor", cursor))
	second := rows(r.stdout)
	if len(second) != 2 || second[0] == first[0] {
		t.Fatalf("second page %v after %v", second, first)
	}

	r = must(t, n.cli(t, "objects", "--limit", "2", "--all", "--class", "db"))
	all := rows(r.stdout)
	sort.Strings(all)
	if strings.Join(all, " ") != strings.Join(names, " ") || r.stderr != "" {
		t.Fatalf("--all: %v\n%v", all, r)
	}
	if !strings.Contains(r.stdout, "2099-01-02T03:04:05.000Z") {
		t.Fatalf("alarm column:\n%s", r.stdout)
	}

	r = must(t, n.cli(t, "objects", "--all", "--json"))
	var list rpc.ObjectList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Objects) != len(names) || list.Cursor != "" {
		t.Fatalf("--json: %v %+v", err, list)
	}
	r = n.cli(t, "objects", "--class", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_CLASS (404)") {
		t.Fatalf("unknown class: %v", r)
	}
}

func TestAdminToken(t *testing.T) {
	n := startNode(t, "s3cret")
	r := n.cli(t, "kv", "list", "db/x")
	if r.code != 1 || !strings.Contains(r.stderr, "UNAUTHENTICATED (401)") {
		t.Fatalf("without a token: %v", r)
	}
	r = n.cli(t, "kv", "list", "db/x", "--token", "wrong")
	if r.code != 1 || !strings.Contains(r.stderr, "UNAUTHENTICATED (401)") {
		t.Fatalf("wrong token: %v", r)
	}
	must(t, n.cli(t, "kv", "list", "db/x", "--token", "s3cret"))
	must(t, runEnv(t, map[string]string{"DURA_ADDR": n.ts.URL, "DURA_TOKEN": "s3cret"}, "", "sql", "db/x", "SELECT 1"))
	// Beside a node (in its container), its own DURA_ADMIN_TOKEN serves.
	must(t, runEnv(t, map[string]string{"DURA_ADDR": n.ts.URL, "DURA_ADMIN_TOKEN": "s3cret"}, "", "sql", "db/x", "SELECT 1"))
	// Health checks need no token; object handlers neither.
	must(t, n.cli(t, "health", "--ready"))
	must(t, n.cli(t, "call", "echo/a"))
}

func TestAddrFlag(t *testing.T) {
	n := startNode(t, "")
	// --addr wins over DURA_ADDR; an address without a scheme works.
	must(t, runEnv(t, map[string]string{"DURA_ADDR": "http://127.0.0.1:1"}, "", "health", "--addr", strings.TrimPrefix(n.ts.URL, "http://")))
	r := runEnv(t, map[string]string{"DURA_ADDR": "http://127.0.0.1:1"}, "", "health")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach http://127.0.0.1:1") {
		t.Fatalf("health against port 1: %v", r)
	}
}

func TestSQLInteractiveLongLineAndInterrupt(t *testing.T) {
	n := startNode(t, "")
	// A 90 KB statement on one line (bufio.Scanner's default limit is 64 KB).
	long := "SELECT length('" + strings.Repeat("x", 90*1024) + "') AS n;\n"
	r := n.cliIn(t, long, "sql", "db/long")
	if r.code != 0 || !strings.Contains(r.stdout, " 92160\n") {
		t.Fatalf("long statement: exit %d, stderr %s, stdout %.300s", r.code, r.stderr, r.stdout)
	}

	// An interrupt while the prompt waits for input ends the session.
	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errb bytes.Buffer
	in := &readWatcher{r: pr}
	env := &cliEnv{stdin: in, stdout: &out, stderr: &errb,
		getenv: func(k string) string { return map[string]string{"DURA_ADDR": n.ts.URL}[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- run(ctx, env, []string{"sql", "db/long"}) }()
	testutil.PollTrue(t, 10*time.Second, "the prompt reads its input", in.reading.Load)
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("interrupted session exit %d: %s", c, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not give up on an interrupt")
	}
}

// readWatcher is a reader that notes when it is first read.
type readWatcher struct {
	r       io.Reader
	reading atomic.Bool
}

func (w *readWatcher) Read(p []byte) (int, error) {
	w.reading.Store(true)
	return w.r.Read(p)
}

func TestBookmarkAndRestore(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "db/o", "CREATE TABLE t (x); INSERT INTO t VALUES ('first')"))
	r := must(t, n.cli(t, "bookmark", "db/o"))
	first := strings.Fields(r.stdout)[0]
	must(t, n.cli(t, "sql", "db/o", "UPDATE t SET x = 'second'"))
	r = must(t, n.cli(t, "bookmark", "--json", "db/o"))
	var latest rpc.BookmarkResponse
	if err := json.Unmarshal([]byte(r.stdout), &latest); err != nil || !(first < latest.Bookmark) {
		t.Fatalf("bookmark --json: %v %+v (first %s)", err, latest, first)
	}

	r = must(t, n.cli(t, "restore", "db/o", "--bookmark", first))
	if !strings.Contains(r.stdout, "restored db/o to "+first) || !strings.Contains(r.stdout, "--bookmark "+latest.Bookmark) {
		t.Fatalf("restore:\n%s", r.stdout)
	}
	r = must(t, n.cli(t, "sql", "db/o", "SELECT x FROM t"))
	if !strings.Contains(r.stdout, "first") {
		t.Fatalf("after restore:\n%s", r.stdout)
	}
	must(t, n.cli(t, "restore", "db/o", "--bookmark", latest.Bookmark))
	r = must(t, n.cli(t, "sql", "db/o", "SELECT x FROM t"))
	if !strings.Contains(r.stdout, "second") {
		t.Fatalf("after undo:\n%s", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"restore", "db/o"}, 2, "give one of --at TIME and --bookmark B"},
		{[]string{"restore", "db/o", "--at", "yesterday"}, 2, "--at:"},
		{[]string{"restore", "db/o", "--at", "1000"}, 1, "before the retention window"},
		{[]string{"bookmark", "db/o", "--at", "1000h"}, 1, "BAD_REQUEST (400)"},
		{[]string{"restore", "db/o", "--bookmark", "nonsense"}, 1, "is not a bookmark"},
	} {
		r := n.cli(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %v, want exit %d and %q", tc.args, r, tc.code, tc.want)
		}
	}
}

func TestStatusListsLaggingPartitions(t *testing.T) {
	info := rpc.ClusterInfo{UnderReplicated: 3, Lagging: []rpc.PartitionCopies{
		{Partition: 7, Primary: "n1", Replicas: []string{"n1", "n2", "n3"}, InSync: []string{"n1", "n2"}},
		{Partition: 9, Primary: "n2", Replicas: []string{"n2", "n3"}, InSync: []string{"n2"}, Target: "n3"},
	}}
	var b strings.Builder
	writeLagging(&b, info)
	want := "\nunder-replicated (the first 2): fewer in-sync copies than the replication factor\n" +
		"  partition 7: primary n1, in sync n1,n2, behind n3\n" +
		"  partition 9: primary n2, in sync n2, behind n3, moving to n3\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	writeLagging(&b, rpc.ClusterInfo{})
	if b.String() != "" {
		t.Fatalf("nothing lagging printed %q", b.String())
	}
}
