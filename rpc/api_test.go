package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/internal/testutil/nodetest"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

type testNode struct {
	rt  *node.Runtime
	ts  *httptest.Server
	cli *rpc.Client
}

func startNode(t *testing.T, token string) *testNode {
	t.Helper()
	return startNodeWith(t, token, nil)
}

// startNodeWith starts a node whose config tweak may change first.
func startNodeWith(t *testing.T, token string, tweak func(*node.Config)) *testNode {
	t.Helper()
	n := nodetest.StartNode(t, nodetest.Options{Name: "n1", AdminToken: token, Config: func(cfg *node.Config) {
		cfg.StatementTimeout = 300 * time.Millisecond
		cfg.MaxObjectBytes = 1 << 20
		if tweak != nil {
			tweak(cfg)
		}
	}})
	return &testNode{rt: n.RT, ts: n.Server, cli: n.Client}
}

// noRedirects shows the API's own answer: the API never redirects, and a
// followed redirect would hide which route answered.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// raw sends a request and returns status, headers and body.
func (n *testNode) raw(t *testing.T, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func errCode(t *testing.T, body string) string {
	t.Helper()
	var e rpc.ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

func TestSQLRoute(t *testing.T) {
	n := startNode(t, "")
	code, hdr, body := n.raw(t, "POST", "/v1/objects/db/s1/sql", `{"statements":[
		{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB, f REAL)"},
		{"sql":"INSERT INTO t (v, b, f) VALUES (?, ?, ?)","params":["hello",{"$base64":"AAH/"},1.5]},
		{"sql":"SELECT id, v, b, f FROM t"}]}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if hdr.Get("X-Dura-Node") != "n1" || hdr.Get("X-Dura-Hops") != "0" {
		t.Fatalf("headers %v", hdr)
	}
	var resp rpc.SQLResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 3 || resp.Results[1].RowsWritten != 1 || resp.Results[1].LastInsertID != 1 || resp.Results[1].Changes != 1 {
		t.Fatalf("results %+v", resp.Results)
	}
	want := `[[1,"hello",{"$base64":"AAH/"},1.5]]`
	if got, _ := json.Marshal(resp.Results[2].Rows); string(got) != want {
		t.Fatalf("rows %s want %s", got, want)
	}
	// The Go client maps BLOBs back to []byte.
	res, err := n.cli.SQL(context.Background(), "db", "s1", rpc.Statement{SQL: "SELECT b FROM t WHERE v = ?", Params: []any{"hello"}})
	if err != nil || !bytes.Equal(res[0].Rows[0][0].([]byte), []byte{0, 1, 0xff}) {
		t.Fatalf("client rows %v %v", res, err)
	}
	// One inline statement is accepted too.
	if code, _, body := n.raw(t, "POST", "/v1/objects/db/s1/sql", `{"sql":"SELECT count(*) AS n FROM t"}`); code != 200 || !strings.Contains(body, `"columns":["n"]`) {
		t.Fatalf("inline: %d %s", code, body)
	}
}

func TestSQLAllOrNothing(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	if _, err := n.cli.SQL(ctx, "db", "a", rpc.Statement{SQL: "CREATE TABLE t (v UNIQUE)"}); err != nil {
		t.Fatal(err)
	}
	code, _, body := n.raw(t, "POST", "/v1/objects/db/a/sql", `{"statements":[
		{"sql":"INSERT INTO t VALUES (1)"},{"sql":"INSERT INTO t VALUES (1)"}]}`)
	if code != 409 || errCode(t, body) != "CONSTRAINT" || !strings.Contains(body, `"statement":1`) {
		t.Fatalf("%d %s", code, body)
	}
	res, err := n.cli.SQL(ctx, "db", "a", rpc.Statement{SQL: "SELECT count(*) FROM t"})
	if err != nil || res[0].Rows[0][0] != int64(0) {
		t.Fatalf("rows after failed batch: %v %v", res, err)
	}
}

func TestErrorCodes(t *testing.T) {
	n := startNode(t, "")
	big := strings.Repeat("x", 200*1024)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown class sql", "POST", "/v1/objects/nope/x/sql", `{"sql":"SELECT 1"}`, 404, "UNKNOWN_CLASS"},
		{"unknown class call", "GET", "/objects/nope/x/", "", 404, "UNKNOWN_CLASS"},
		{"unknown class kv", "GET", "/v1/objects/nope/x/kv", "", 404, "UNKNOWN_CLASS"},
		{"unknown class alarm", "GET", "/v1/objects/nope/x/alarm", "", 404, "UNKNOWN_CLASS"},
		{"unknown class info", "GET", "/v1/objects/nope/x", "", 404, "UNKNOWN_CLASS"},
		{"bad class", "POST", "/v1/objects/9bad/x/sql", `{"sql":"SELECT 1"}`, 400, "BAD_REQUEST"},
		{"bad json", "POST", "/v1/objects/db/x/sql", `{"sql":`, 400, "BAD_REQUEST"},
		{"no statements", "POST", "/v1/objects/db/x/sql", `{"statements":[]}`, 400, "BAD_REQUEST"},
		{"bad param", "POST", "/v1/objects/db/x/sql", `{"sql":"SELECT ?","params":[[1]]}`, 400, "BAD_REQUEST"},
		{"syntax", "POST", "/v1/objects/db/x/sql", `{"sql":"SELEKT"}`, 400, "SQL_ERROR"},
		{"sandbox", "POST", "/v1/objects/db/x/sql", `{"sql":"ATTACH 'x.db' AS x"}`, 403, "NOT_AUTHORIZED"},
		{"reserved", "POST", "/v1/objects/db/x/sql", `{"sql":"SELECT * FROM _dura_kv"}`, 403, "NOT_AUTHORIZED"},
		{"long statement", "POST", "/v1/objects/db/x/sql", `{"sql":"SELECT '` + big + `'"}`, 413, "TOO_LARGE"},
		{"huge blob", "POST", "/v1/objects/db/x/sql", `{"sql":"SELECT zeroblob(10000000)"}`, 413, "TOO_LARGE"},
		{"timeout", "POST", "/v1/objects/db/x/sql", `{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"}`, 504, "TIMEOUT"},
		{"storage full", "POST", "/v1/objects/db/full/sql", `{"statements":[{"sql":"CREATE TABLE t (b)"},{"sql":"INSERT INTO t SELECT randomblob(100000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 20) SELECT x FROM c)"}]}`, 507, "STORAGE_FULL"},
		{"body too large", "POST", "/v1/objects/db/x/sql", strings.Repeat(" ", rpc.MaxAPIBody+1), 413, "TOO_LARGE"},
		{"missing kv", "GET", "/v1/objects/db/x/kv/nope", "", 404, "NOT_FOUND"},
		{"kv not json", "PUT", "/v1/objects/db/x/kv/k", `{nope`, 400, "BAD_REQUEST"},
		{"alarm bad body", "PUT", "/v1/objects/db/x/alarm", `{"at":"soon"}`, 400, "BAD_REQUEST"},
		{"db has no handler", "GET", "/objects/db/x/", "", 404, "NOT_FOUND"},
		{"no route", "GET", "/nowhere", "", 404, "NOT_FOUND"},
		{"export missing", "GET", "/v1/objects/db/never/export", "", 404, "NOT_FOUND"},
		{"import garbage", "PUT", "/v1/objects/db/x/import", "garbage", 400, "BAD_REQUEST"},
		{"list bad limit", "GET", "/v1/objects?limit=0", "", 400, "BAD_REQUEST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := n.raw(t, tc.method, tc.path, tc.body)
			if code != tc.status || errCode(t, body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", code, body, tc.status, tc.code)
			}
			if hdr.Get("X-Dura-Node") != "n1" {
				t.Fatalf("no X-Dura-Node on an error")
			}
		})
	}
	// The storage-full object kept nothing of the failed batch.
	res, err := n.cli.SQL(context.Background(), "db", "full", rpc.Statement{SQL: "SELECT count(*) FROM sqlite_master WHERE name = 't'"})
	if err != nil || res[0].Rows[0][0] != int64(0) {
		t.Fatalf("after STORAGE_FULL: %v %v", res, err)
	}
}

func TestKVRoutes(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	for i, k := range []string{"user:1", "user:2", "user:3", "other", "with/slash"} {
		if err := n.cli.KVPut(ctx, "db", "kv", k, rpc.RawJSON(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	v, err := n.cli.KVGet(ctx, "db", "kv", "with/slash")
	if err != nil || string(v) != `{"n":4}` {
		t.Fatalf("get %s %v", v, err)
	}
	es, err := n.cli.KVList(ctx, "db", "kv", rpc.KVList{Prefix: "user:", Reverse: true, Limit: 2})
	if err != nil || len(es) != 2 || es[0].Key != "user:3" || es[1].Key != "user:2" {
		t.Fatalf("list %+v %v", es, err)
	}
	code, _, body := n.raw(t, "GET", "/v1/objects/db/kv/kv?start=user:2&end=user:3", "")
	if code != 200 || body != `{"entries":[{"key":"user:2","value":{"n":1}}]}`+"\n" {
		t.Fatalf("%d %s", code, body)
	}
	if ok, err := n.cli.KVDelete(ctx, "db", "kv", "user:1"); !ok || err != nil {
		t.Fatalf("delete %v %v", ok, err)
	}
	if _, err := n.cli.KVGet(ctx, "db", "kv", "user:1"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
}

func TestAlarmInfoDeleteRoutes(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	at := time.Now().Add(time.Hour).UnixMilli()
	if err := n.cli.SetAlarm(ctx, "db", "o", at); err != nil {
		t.Fatal(err)
	}
	code, _, body := n.raw(t, "GET", "/v1/objects/db/o/alarm", "")
	if code != 200 || body != fmt.Sprintf(`{"alarm":%d}`+"\n", at) {
		t.Fatalf("%d %s", code, body)
	}
	n.cli.SQL(ctx, "db", "o", rpc.Statement{SQL: "CREATE TABLE t (v); INSERT INTO t VALUES (1)"})
	n.cli.KVPut(ctx, "db", "o", "k", rpc.RawJSON(`1`))
	info, err := n.cli.Info(ctx, "db", "o")
	if err != nil || info.Owner != "n1" || info.SizeBytes == 0 || info.Alarm == nil || *info.Alarm != at || len(info.ID) != 64 {
		t.Fatalf("info %+v %v", info, err)
	}
	// db runs no code when its alarm fires, and says so.
	if info.AlarmHandler == nil || *info.AlarmHandler {
		t.Fatalf("db's alarm_handler: %v, want false", info.AlarmHandler)
	}
	if err := n.cli.DeleteObject(ctx, "db", "o"); err != nil {
		t.Fatal(err)
	}
	if a, _ := n.cli.GetAlarm(ctx, "db", "o"); a != nil {
		t.Fatal("alarm survived delete")
	}
	if _, err := n.cli.KVGet(ctx, "db", "o", "k"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatal("kv survived delete")
	}
	if _, err := n.cli.SQL(ctx, "db", "o", rpc.Statement{SQL: "SELECT * FROM t"}); !errors.Is(err, apierr.ErrSQL) {
		t.Fatalf("table survived delete: %v", err)
	}
	if code, _, body := n.raw(t, "DELETE", "/v1/objects/db/o/alarm", ""); code != 200 || body != `{"alarm":null}`+"\n" {
		t.Fatalf("%d %s", code, body)
	}
}

func TestExportImportRoutes(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	n.cli.SQL(ctx, "db", "src", rpc.Statement{SQL: "CREATE TABLE t (v); INSERT INTO t VALUES ('exported')"})
	n.cli.KVPut(ctx, "db", "src", "k", rpc.RawJSON(`"kv"`))
	var buf bytes.Buffer
	if _, err := n.cli.Export(ctx, "db", "src", &buf); err != nil {
		t.Fatal(err)
	}
	// Importing over a live object with other data replaces it.
	n.cli.SQL(ctx, "db", "dst", rpc.Statement{SQL: "CREATE TABLE old (v)"})
	if err := n.cli.Import(ctx, "db", "dst", bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	res, err := n.cli.SQL(ctx, "db", "dst", rpc.Statement{SQL: "SELECT v FROM t"})
	if err != nil || res[0].Rows[0][0] != "exported" {
		t.Fatalf("imported rows %v %v", res, err)
	}
	if v, err := n.cli.KVGet(ctx, "db", "dst", "k"); err != nil || string(v) != `"kv"` {
		t.Fatalf("imported kv %s %v", v, err)
	}
	if _, err := n.cli.SQL(ctx, "db", "dst", rpc.Statement{SQL: "SELECT * FROM old"}); !errors.Is(err, apierr.ErrSQL) {
		t.Fatalf("old table still there: %v", err)
	}
}

func TestListClusterHealthMetrics(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		n.cli.SQL(ctx, "db", fmt.Sprint("obj-", i), rpc.Statement{SQL: "SELECT 1"})
	}
	// New objects reach the catalog in background batches (within ~50 ms).
	testutil.Poll(t, 5*time.Second, "five objects in the catalog", func() string {
		page, err := n.cli.ListObjects(ctx, "db", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Objects) != 5 {
			return fmt.Sprintf("%d listed", len(page.Objects))
		}
		return ""
	})
	var names []string
	cursor := ""
	for {
		page, err := n.cli.ListObjects(ctx, "db", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			names = append(names, o.Name)
		}
		if page.Cursor == "" {
			break
		}
		cursor = page.Cursor
	}
	if strings.Join(names, ",") != "obj-0,obj-1,obj-2,obj-3,obj-4" {
		t.Fatalf("listed %v", names)
	}
	ci, err := n.cli.Cluster(ctx)
	if err != nil || ci.Node != "n1" || ci.Leader != "n1" || len(ci.Members) != 1 || ci.Members[0].Status != "alive" || ci.Partitions != 271 {
		t.Fatalf("cluster %+v %v", ci, err)
	}
	if err := n.cli.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.cli.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := n.cli.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`dura_http_requests_total{class="db",route="sql",status="200"}`, "dura_http_request_duration_seconds_bucket",
		"dura_active_objects", "dura_open_databases", "dura_storage_bytes", "dura_alarms_fired_total", "dura_alarms_retried_total", "process_open_fds"} {
		if !strings.Contains(m, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

func TestEscapedNames(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	name := "a/b c?d"
	if _, err := n.cli.SQL(ctx, "db", name, rpc.Statement{SQL: "CREATE TABLE t (v)"}); err != nil {
		t.Fatal(err)
	}
	info, err := n.cli.Info(ctx, "db", name)
	if err != nil || info.Name != name {
		t.Fatalf("info %+v %v", info, err)
	}
}

func TestMetricsHeadersAndBoundedLabels(t *testing.T) {
	n := startNode(t, "")
	for i := 0; i < 20; i++ {
		n.raw(t, "GET", fmt.Sprintf("/v1/objects/junk%d/x/kv", i), "")
	}
	code, hdr, body := n.raw(t, "GET", "/metrics", "")
	if code != 200 || hdr.Get("X-Dura-Node") != "n1" || hdr.Get("X-Dura-Hops") != "0" {
		t.Fatalf("/metrics: %d %v", code, hdr)
	}
	if strings.Contains(body, "junk") || !strings.Contains(body, `class="other"`) {
		t.Fatal("unknown classes leak into metric labels")
	}
}

func TestListAlarms(t *testing.T) {
	n := startNode(t, "")
	ctx := context.Background()
	base := time.Now().Add(time.Hour).UnixMilli()
	for i, name := range []string{"c", "a", "b"} {
		if err := n.cli.SetAlarm(ctx, "db", name, base+int64(i)*1000); err != nil {
			t.Fatal(err)
		}
	}
	page, err := n.cli.ListAlarms(ctx, 0, "", 2)
	if err != nil || len(page.Alarms) != 2 || page.Alarms[0].Name != "c" || page.Alarms[1].Name != "a" || page.Cursor == "" {
		t.Fatalf("first page %+v %v", page, err)
	}
	page, err = n.cli.ListAlarms(ctx, 0, page.Cursor, 2)
	if err != nil || len(page.Alarms) != 1 || page.Alarms[0].Name != "b" || page.Cursor != "" {
		t.Fatalf("second page %+v %v", page, err)
	}
	page, err = n.cli.ListAlarms(ctx, base+1500, "", 10)
	if err != nil || len(page.Alarms) != 2 {
		t.Fatalf("before filter %+v %v", page, err)
	}
	if code, _, body := n.raw(t, "GET", "/v1/alarms?limit=0", ""); code != 400 || errCode(t, body) != "BAD_REQUEST" {
		t.Fatalf("%d %s", code, body)
	}
}

// TestResultCountersAreTheCallers: rows_written, changes and last_insert_id
// count the caller's own statements, never the object's bookkeeping
// (its identity row on the first call, the KV table) or an earlier event.
func TestResultCountersAreTheCallers(t *testing.T) {
	n := startNode(t, "")
	type counters struct {
		RowsWritten  int64 `json:"rows_written"`
		Changes      int64 `json:"changes"`
		LastInsertID int64 `json:"last_insert_id"`
	}
	sql := func(obj, stmt string) counters {
		t.Helper()
		code, _, body := n.raw(t, "POST", "/v1/objects/db/"+obj+"/sql", `{"sql":`+fmt.Sprintf("%q", stmt)+`}`)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", stmt, code, body)
		}
		var out struct{ Results []counters }
		if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Results) != 1 {
			t.Fatalf("%s: %s (%v)", stmt, body, err)
		}
		return out.Results[0]
	}
	steps := []struct {
		name, obj, stmt string
		want            counters
	}{
		{"first call on a new object", "fresh", "SELECT 1", counters{}},
		{"create", "fresh", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", counters{}},
		{"insert", "fresh", "INSERT INTO t (v) VALUES ('a')", counters{1, 1, 1}},
		{"select after an insert event", "fresh", "SELECT 1", counters{}},
		{"update", "fresh", "UPDATE t SET v = 'b'", counters{1, 1, 0}},
	}
	for _, s := range steps {
		if got := sql(s.obj, s.stmt); got != s.want {
			t.Errorf("%s: %+v, want %+v", s.name, got, s.want)
		}
	}
	if code, _, body := n.raw(t, "PUT", "/v1/objects/db/fresh/kv/k", `{"x":1}`); code != http.StatusOK {
		t.Fatalf("kv put: %d %s", code, body)
	}
	if got := sql("fresh", "SELECT 1"); got != (counters{}) {
		t.Errorf("select after a KV write: %+v, want zeros", got)
	}
}

// TestClientFacingErrors: a wrong method is 405 with Allow; messages say
// what is wrong in the API's words, without Go type names or the code
// repeated as a prefix.
func TestClientFacingErrors(t *testing.T) {
	n := startNode(t, "")
	code, h, body := n.raw(t, "GET", "/v1/objects/db/x/sql", "")
	if code != http.StatusMethodNotAllowed || h.Get("Allow") != "POST" || errCode(t, body) != "METHOD_NOT_ALLOWED" {
		t.Fatalf("GET on the sql route: %d Allow=%q %s", code, h.Get("Allow"), body)
	}
	if code, h, _ := n.raw(t, "PATCH", "/v1/objects/db/x/alarm", ""); code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD, PUT, DELETE" {
		t.Fatalf("PATCH on the alarm route: %d Allow=%q", code, h.Get("Allow"))
	}
	if code, _, _ := n.raw(t, "GET", "/v1/nothing", ""); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
	for _, c := range []struct{ name, path, body, want string }{
		{"number for a string", "/v1/objects/db/x/sql", `{"sql": 12}`, `"sql" must be a string, not a JSON number`},
		{"not JSON", "/v1/objects/db/x/sql", `{"sql": `, `the body is empty or cut short; it must be JSON`},
		{"no prefix", "/v1/objects/db/x/sql", `{"sql":"SELECT * FROM nope"}`, `statement 0: no such table: nope`},
	} {
		_, _, body := n.raw(t, "POST", c.path, c.body)
		var e rpc.ErrorBody
		json.Unmarshal([]byte(body), &e)
		if e.Error.Message != c.want {
			t.Errorf("%s: message %q, want %q", c.name, e.Error.Message, c.want)
		}
	}
}
