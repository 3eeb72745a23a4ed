package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// victimState is what a refused request must leave as it was.
type victimState struct {
	Rows  [][]any
	KV    []rpc.KVEntry
	Alarm *int64
	Files int // object files on the node: a refusal creates none
}

func seedVictim(t *testing.T, n *testNode) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.cli.SQL(ctx, "db", "victim", rpc.Statement{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v)"},
		rpc.Statement{SQL: "INSERT INTO t (v) VALUES ('a'), (?)", Params: []any{[]byte{0, 1}}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "a", "b"} {
		if err := n.cli.KVPut(ctx, "db", "victim", k, rpc.RawJSON(`{"key":"`+k+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.cli.SetAlarm(ctx, "db", "victim", 4102444800000); err != nil {
		t.Fatal(err)
	}
}

func victim(t *testing.T, n *testNode) victimState {
	t.Helper()
	ctx := context.Background()
	var st victimState
	res, err := n.cli.SQL(ctx, "db", "victim", rpc.Statement{SQL: "SELECT id, v FROM t ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	st.Rows = res[0].Rows
	if st.KV, err = n.cli.KVList(ctx, "db", "victim", rpc.KVList{}); err != nil {
		t.Fatal(err)
	}
	if st.Alarm, err = n.cli.GetAlarm(ctx, "db", "victim"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(n.rt.PartitionDir(0))
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".db") {
			st.Files++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// hostileRequest is one hostile request and the refusal it must get.
type hostileRequest struct {
	name, method, path, body string
	status                   int
	code                     string
}

// sqlPath is the victim's /sql route.
const sqlPath = "/v1/objects/db/victim/sql"

// hostileRequests are the requests TestHostileRequestsLeaveTheObjectIntact
// sends; FuzzParseSQLRequest starts from their SQL bodies.
func hostileRequests() []hostileRequest {
	// batch writes a row, then runs stmt (a JSON statement object).
	batch := func(stmt string) string {
		return `{"statements":[{"sql":"INSERT INTO t (v) VALUES ('partial')"},` + stmt + `]}`
	}
	deep := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	list := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	big := strings.Repeat("x", 10*1024)
	return []hostileRequest{
		// Limits on the SQL request.
		{"statement over 100 KB", "POST", sqlPath, batch(`{"sql":"SELECT '` + strings.Repeat("x", 100*1024) + `'"}`), 413, "TOO_LARGE"},
		{"101 parameters", "POST", sqlPath, batch(`{"sql":"SELECT ` + list("?", 101) + `","params":[` + list("1", 101) + `]}`), 413, "TOO_LARGE"},
		{"parameter over 2 MB", "POST", sqlPath, batch(`{"sql":"INSERT INTO t (v) VALUES (?)","params":["` + strings.Repeat("x", 2<<20+1) + `"]}`), 413, "TOO_LARGE"},
		{"body over 8 MiB", "POST", sqlPath, batch(`{"sql":"SELECT ?","params":["` + strings.Repeat("x", rpc.MaxAPIBody) + `"]}`), 413, "TOO_LARGE"},
		{"parameter nested 20000 deep", "POST", sqlPath, batch(`{"sql":"SELECT ?","params":[` + deep("[", "]", 20000) + `]}`), 400, "BAD_REQUEST"},
		{"parameter nested 100 deep", "POST", sqlPath, batch(`{"sql":"SELECT ?","params":[` + strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100) + `]}`), 400, "BAD_REQUEST"},
		{"unknown field nested 20000 deep", "POST", sqlPath, `{"sql":"INSERT INTO t (v) VALUES (1)","x":` + deep("[", "]", 20000) + `}`, 400, "BAD_REQUEST"},
		{"body nested 20000 deep", "POST", sqlPath, deep("[", "]", 20000), 400, "BAD_REQUEST"},
		{"object parameter", "POST", sqlPath, batch(`{"sql":"SELECT ?","params":[{"$base64":"AA==","x":1}]}`), 400, "BAD_REQUEST"},
		{"bad base64", "POST", sqlPath, batch(`{"sql":"SELECT ?","params":[{"$base64":"!!"}]}`), 400, "BAD_REQUEST"},
		{"number out of range", "POST", sqlPath, batch(`{"sql":"SELECT ?","params":[1e999]}`), 400, "BAD_REQUEST"},
		{"NUL in the statement", "POST", sqlPath, `{"sql":"DELETE FROM t\u0000 WHERE id = 0"}`, 400, "BAD_REQUEST"},
		{"invalid UTF-8 in the body", "POST", sqlPath, batch("{\"sql\":\"INSERT INTO t (v) VALUES ('\xff\xfe')\"}"), 400, "BAD_REQUEST"},
		{"trailing data", "POST", sqlPath, `{"sql":"INSERT INTO t (v) VALUES (1)"} {"sql":"DELETE FROM t"}`, 400, "BAD_REQUEST"},
		// The sandbox.
		{"attach", "POST", sqlPath, batch(`{"sql":"ATTACH '/tmp/dura-hostile.db' AS x"}`), 403, "NOT_AUTHORIZED"},
		{"vacuum into a file", "POST", sqlPath, batch(`{"sql":"VACUUM INTO '/tmp/dura-hostile.db'"}`), 403, "NOT_AUTHORIZED"},
		{"load_extension", "POST", sqlPath, batch(`{"sql":"SELECT load_extension('/tmp/x.so')"}`), 403, "NOT_AUTHORIZED"},
		{"writable_schema", "POST", sqlPath, batch(`{"sql":"PRAGMA writable_schema = 1"}`), 403, "NOT_AUTHORIZED"},
		{"write sqlite_master", "POST", sqlPath, batch(`{"sql":"UPDATE sqlite_master SET sql = 'CREATE TABLE t (x)' WHERE name = 't'"}`), 403, "NOT_AUTHORIZED"},
		{"read kv table", "POST", sqlPath, batch(`{"sql":"SELECT * FROM _dura_kv"}`), 403, "NOT_AUTHORIZED"},
		{"write kv table", "POST", sqlPath, batch(`{"sql":"DELETE FROM _dura_kv"}`), 403, "NOT_AUTHORIZED"},
		{"write identity", "POST", sqlPath, batch(`{"sql":"UPDATE _dura_object SET v = 'other'"}`), 403, "NOT_AUTHORIZED"},
		{"trigger on kv table", "POST", sqlPath, batch(`{"sql":"CREATE TRIGGER tr AFTER INSERT ON _dura_kv BEGIN SELECT 1; END"}`), 403, "NOT_AUTHORIZED"},
		{"trigger writing kv table", "POST", sqlPath, batch(`{"sql":"CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM _dura_kv; END"}`), 403, "NOT_AUTHORIZED"},
		{"endless recursive CTE", "POST", sqlPath, batch(`{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"}`), 504, "TIMEOUT"},
		{"huge zeroblob", "POST", sqlPath, batch(`{"sql":"INSERT INTO t (v) VALUES (zeroblob(3000000))"}`), 413, "TOO_LARGE"},
		{"huge randomblob", "POST", sqlPath, batch(`{"sql":"INSERT INTO t (v) VALUES (randomblob(3000000))"}`), 413, "TOO_LARGE"},
		{"past the size limit", "POST", sqlPath, batch(`{"sql":"INSERT INTO t (v) SELECT zeroblob(100000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 20) SELECT x FROM c)"}`), 507, "STORAGE_FULL"},
		// KV values and keys.
		{"kv value nested 20000 deep", "PUT", "/v1/objects/db/victim/kv/k", deep("[", "]", 20000), 400, "BAD_REQUEST"},
		{"kv value not JSON", "PUT", "/v1/objects/db/victim/kv/k", `{"a":`, 400, "BAD_REQUEST"},
		{"kv value invalid UTF-8", "PUT", "/v1/objects/db/victim/kv/k", "\"\xff\xfe\"", 400, "BAD_REQUEST"},
		{"kv value over 8 MiB", "PUT", "/v1/objects/db/victim/kv/k", `"` + strings.Repeat("x", rpc.MaxAPIBody) + `"`, 413, "TOO_LARGE"},
		{"kv key of 10 KB", "PUT", "/v1/objects/db/victim/kv/" + big, `1`, 413, "TOO_LARGE"},
		{"kv key NUL", "PUT", "/v1/objects/db/victim/kv/%00", `1`, 400, "BAD_REQUEST"},
		{"kv key invalid UTF-8", "PUT", "/v1/objects/db/victim/kv/%FF", `1`, 400, "BAD_REQUEST"},
		{"kv key empty", "PUT", "/v1/objects/db/victim/kv/", `1`, 400, "BAD_REQUEST"},
		{"kv key dot-dot put", "PUT", "/v1/objects/db/victim/kv/a/../k", `1`, 400, "BAD_REQUEST"},
		{"kv key dot-dot delete", "DELETE", "/v1/objects/db/victim/kv/..", "", 400, "BAD_REQUEST"},
		{"kv key dot-dot-dot-dot delete", "DELETE", "/v1/objects/db/victim/kv/a/../..", "", 400, "BAD_REQUEST"},
		{"kv key dot get", "GET", "/v1/objects/db/victim/kv/.", "", 400, "BAD_REQUEST"},
		{"kv key double slash", "DELETE", "/v1/objects/db/victim/kv//k", "", 400, "BAD_REQUEST"},
		{"alarm past year 9999", "PUT", "/v1/objects/db/victim/alarm", `{"at":9223372036854775807}`, 400, "BAD_REQUEST"},
		// Class and name.
		{"class dot-dot", "POST", "/v1/objects/%2E%2E/victim/sql", batch(`{"sql":"SELECT 1"}`), 400, "BAD_REQUEST"},
		{"class with a slash", "POST", "/v1/objects/d%2Fb/victim/sql", batch(`{"sql":"SELECT 1"}`), 400, "BAD_REQUEST"},
		{"class of 10 KB", "GET", "/v1/objects/" + big + "/victim/kv/k", "", 400, "BAD_REQUEST"},
		{"class invalid UTF-8", "GET", "/v1/objects/%FF/victim/kv/k", "", 400, "BAD_REQUEST"},
		{"class NUL", "GET", "/v1/objects/db%00/victim/kv/k", "", 400, "BAD_REQUEST"},
		{"name NUL", "POST", "/v1/objects/db/victim%00/sql", batch(`{"sql":"SELECT 1"}`), 400, "BAD_REQUEST"},
		{"name invalid UTF-8", "POST", "/v1/objects/db/%FF/sql", batch(`{"sql":"SELECT 1"}`), 400, "BAD_REQUEST"},
		{"name of 10 KB", "POST", "/v1/objects/db/" + big + "/sql", batch(`{"sql":"SELECT 1"}`), 400, "BAD_REQUEST"},
		{"name empty", "POST", "/v1/objects/db//sql", batch(`{"sql":"SELECT 1"}`), 400, "BAD_REQUEST"},
		{"name of exactly a slash", "DELETE", "/v1/objects/db/%2F", "", 400, "BAD_REQUEST"},
		{"name empty at the end", "DELETE", "/v1/objects/db/", "", 400, "BAD_REQUEST"},
		{"name dot-dot", "DELETE", "/v1/objects/db/victim/kv/../../victim", "", 400, "BAD_REQUEST"},
		{"name dot", "DELETE", "/v1/objects/db/./victim", "", 400, "BAD_REQUEST"},
		{"call path dot-dot", "POST", "/objects/db/x/../victim/", "", 400, "BAD_REQUEST"},
		{"call body over 16 MiB", "POST", "/objects/db/victim/", strings.Repeat("x", rpc.MaxCallBody+1), 413, "TOO_LARGE"},
	}
}

// TestHostileRequestsLeaveTheObjectIntact sends hostile requests over real
// HTTP. Each must get its documented code, and the object must be as it
// was: a batch that wrote before its hostile statement keeps none of it,
// and no request creates another object.
func TestHostileRequestsLeaveTheObjectIntact(t *testing.T) {
	n := startNode(t, "")
	seedVictim(t, n)
	want := victim(t, n)
	for _, tc := range hostileRequests() {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := n.raw(t, tc.method, tc.path, tc.body)
			if code != tc.status || errCode(t, body) != tc.code {
				t.Fatalf("got %d %.300s, want %d %s", code, body, tc.status, tc.code)
			}
			if hdr.Get(rpc.HeaderNode) != "n1" {
				t.Fatalf("no %s on the refusal", rpc.HeaderNode)
			}
			if got := victim(t, n); !reflect.DeepEqual(got, want) {
				t.Fatalf("the object changed:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if _, err := os.Stat("/tmp/dura-hostile.db"); err == nil {
		t.Fatal("a statement wrote /tmp/dura-hostile.db")
	}
}

// pathTricks are names and keys that look like paths; FuzzObjectRoute
// starts from them.
var pathTricks = []string{".", "..", "...", "a/..", "../..", "a/../k", "//", "/x", "%2F", "%2E%2E", "victim/kv/k", "?x=1", "#f", " ", "\u00e9\U0001F600"}

// TestPathTricksReachTheirOwnObject: names and keys that look like paths
// are data. Through the Go client each reaches its own object or key, and
// deleting one never touches another (a KV key ".." once sent DELETE to the
// object itself).
func TestPathTricksReachTheirOwnObject(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	seedVictim(t, n)
	want := victim(t, n)
	// "/" alone is a key but no name: see "name of exactly a slash".
	names := pathTricks
	keys := append([]string{"/"}, names...)
	for _, k := range keys {
		t.Run("key "+strconv.Quote(k), func(t *testing.T) {
			val := rpc.RawJSON(strconv.Quote("value of " + k))
			if err := n.cli.KVPut(ctx, "db", "victim", k, val); err != nil {
				t.Fatalf("put: %v", err)
			}
			if v, err := n.cli.KVGet(ctx, "db", "victim", k); err != nil || string(v) != string(val) {
				t.Fatalf("get: %s %v", v, err)
			}
			if ok, err := n.cli.KVDelete(ctx, "db", "victim", k); !ok || err != nil {
				t.Fatalf("delete: %v %v", ok, err)
			}
			if got := victim(t, n); !reflect.DeepEqual(got, want) {
				t.Fatalf("the victim changed:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	for _, name := range names {
		t.Run("name "+strconv.Quote(name), func(t *testing.T) {
			if _, err := n.cli.SQL(ctx, "db", name, rpc.Statement{SQL: "CREATE TABLE mine (v); INSERT INTO mine VALUES (?)", Params: []any{name}}); err != nil {
				t.Fatalf("sql: %v", err)
			}
			info, err := n.cli.Info(ctx, "db", name)
			if err != nil || info.Name != name || info.Class != "db" {
				t.Fatalf("info: %+v %v", info, err)
			}
			if err := n.cli.DeleteObject(ctx, "db", name); err != nil {
				t.Fatalf("delete object: %v", err)
			}
			if _, err := n.cli.SQL(ctx, "db", name, rpc.Statement{SQL: "SELECT * FROM mine"}); !errors.Is(err, apierr.ErrSQL) {
				t.Fatalf("the object was not deleted: %v", err)
			}
			got := victim(t, n)
			got.Files = want.Files // each name leaves its own (emptied) object file
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the victim changed:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestObjectFloodStaysUnderTheOpenFilesCap touches many distinct objects
// over HTTP with a small MaxOpenFiles and MaxObjects: open databases, live
// objects and the process's file descriptors stay bounded, and every
// object keeps its data.
func TestObjectFloodStaysUnderTheOpenFilesCap(t *testing.T) {
	const capObjects, liveObjects = 4, 50
	n := startNodeWith(t, "", func(c *node.Config) {
		c.MaxOpenFiles = capObjects * node.FilesPerObject
		c.MaxObjects = liveObjects
	})
	ctx := context.Background()
	fdsBefore, fdErr := openFDs()
	// Databases to park or close wait for the closers (see node); the
	// HTTP connections and the metrics scrape take a few more.
	const fdSlack = 4*node.FilesPerObject + 8
	const objects = 200
	for i := 0; i < objects; i++ {
		name := fmt.Sprintf("flood-%d-%s", i, strings.Repeat("n", i%50))
		if _, err := n.cli.SQL(ctx, "db", name, rpc.Statement{SQL: "CREATE TABLE t (v); INSERT INTO t VALUES (?)", Params: []any{name}}); err != nil {
			t.Fatal(err)
		}
		if i%10 != 9 {
			continue
		}
		m, err := n.cli.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if open := gauge(t, m, "dura_open_databases"); open > capObjects {
			t.Fatalf("after %d objects: %v open databases, cap %d", i+1, open, capObjects)
		}
		if active := gauge(t, m, "dura_active_objects"); active > liveObjects || (i >= liveObjects && active < liveObjects) {
			t.Fatalf("after %d objects: %v live objects, cap %d", i+1, active, liveObjects)
		}
		if fdErr == nil {
			fds, err := openFDs()
			if err != nil {
				t.Fatal(err)
			}
			if fds-fdsBefore > capObjects*node.FilesPerObject+fdSlack {
				t.Fatalf("after %d objects: %d more file descriptors, cap %d + %d", i+1, fds-fdsBefore, capObjects*node.FilesPerObject, fdSlack)
			}
		}
	}
	for _, i := range []int{0, objects / 2, objects - 1} {
		name := fmt.Sprintf("flood-%d-%s", i, strings.Repeat("n", i%50))
		res, err := n.cli.SQL(ctx, "db", name, rpc.Statement{SQL: "SELECT v FROM t"})
		if err != nil || len(res[0].Rows) != 1 || res[0].Rows[0][0] != name {
			t.Fatalf("%s after the flood: %v %v", name, res, err)
		}
	}
}

// openFDs counts this process's open file descriptors (Linux).
func openFDs() (int, error) {
	es, err := os.ReadDir("/proc/self/fd")
	return len(es), err
}

// gauge reads an unlabelled metric from Prometheus text.
func gauge(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
