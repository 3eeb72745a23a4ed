package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/testutil/nodetest"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// testNode is one runtime with every example class, served by the HTTP API.
type testNode struct {
	t   *testing.T
	rt  *node.Runtime
	url string
	nd  *nodetest.Node
}

// startNode runs a node on dir. register adds the classes; nil means
// examples.RegisterAll. The node stops at the end of the test, or earlier
// with stop.
func startNode(t *testing.T, dir string, register func(*node.Runtime) error) *testNode {
	t.Helper()
	if register == nil {
		register = examples.RegisterAll
	}
	nd := nodetest.StartNode(t, nodetest.Options{Dir: dir, Register: register})
	return &testNode{t: t, rt: nd.RT, url: nd.URL, nd: nd}
}

func newNode(t *testing.T) *testNode { return startNode(t, t.TempDir(), nil) }

// stop closes the runtime, waiting for its events and WaitUntil work; an
// error closing it fails the test when the test ends.
func (n *testNode) stop() { n.nd.Stop() }

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode is the API error code of an error answer, "" otherwise.
func (r response) errorCode() string {
	var e rpc.ErrorBody
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// do sends a request to an API path. body is sent as is if it is a string
// or []byte and as JSON otherwise.
func (n *testNode) do(method, path string, body any) response {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			n.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// call sends a request to an object's handler, checks the status and
// decodes a JSON answer into out (if not nil).
func (n *testNode) call(method, class, name, path string, body any, wantStatus int, out any) response {
	n.t.Helper()
	r := n.do(method, "/objects/"+class+"/"+name+path, body)
	if r.status != wantStatus {
		n.t.Fatalf("%s %s/%s%s: status %d, want %d; body %s", method, class, name, path, r.status, wantStatus, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			n.t.Fatalf("%s %s/%s%s: decode %s: %v", method, class, name, path, r.body, err)
		}
	}
	return r
}

// callErr sends a request that must fail with the given status and code.
func (n *testNode) callErr(method, class, name, path string, body any, wantStatus int, wantCode string) {
	n.t.Helper()
	r := n.call(method, class, name, path, body, wantStatus, nil)
	if got := r.errorCode(); got != wantCode {
		n.t.Fatalf("%s %s/%s%s: error code %q, want %q; body %s", method, class, name, path, got, wantCode, r.body)
	}
}

// sql runs one statement through the admin SQL route.
func (n *testNode) sql(class, name, query string, params ...any) rpc.SQLResult {
	n.t.Helper()
	r := n.do(http.MethodPost, "/v1/objects/"+class+"/"+name+"/sql", map[string]any{"sql": query, "params": params})
	if r.status != http.StatusOK {
		n.t.Fatalf("sql %q: status %d: %s", query, r.status, r.body)
	}
	var res rpc.SQLResponse
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil || len(res.Results) != 1 {
		n.t.Fatalf("sql %q: bad answer %s (%v)", query, r.body, err)
	}
	return res.Results[0]
}

// sqlInt runs a query answering one integer.
func (n *testNode) sqlInt(class, name, query string, params ...any) int64 {
	n.t.Helper()
	res := n.sql(class, name, query, params...)
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		n.t.Fatalf("sql %q: want one value, got %v", query, res.Rows)
	}
	return toInt(n.t, res.Rows[0][0])
}

// sqlStrings runs a query and returns its first column as text.
func (n *testNode) sqlStrings(class, name, query string, params ...any) []string {
	n.t.Helper()
	var out []string
	for _, row := range n.sql(class, name, query, params...).Rows {
		out = append(out, fmt.Sprint(row[0]))
	}
	return out
}

// alarm is the object's alarm in unix ms, or nil.
func (n *testNode) alarm(class, name string) *int64 {
	n.t.Helper()
	r := n.do(http.MethodGet, "/v1/objects/"+class+"/"+name+"/alarm", nil)
	if r.status != http.StatusOK {
		n.t.Fatalf("get alarm: status %d: %s", r.status, r.body)
	}
	var a rpc.AlarmResponse
	if err := json.Unmarshal(r.body, &a); err != nil {
		n.t.Fatal(err)
	}
	return a.Alarm
}

func toInt(t *testing.T, v any) int64 {
	t.Helper()
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			t.Fatalf("%v is not an integer", x)
		}
		return i
	case float64:
		return int64(x)
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

func anyContains(haystack []string, needle string) bool {
	for _, h := range haystack {
		if strings.Contains(h, needle) {
			return true
		}
	}
	return false
}

// Call, CallErr, SQLInt and SQLStrings serve the checks shared with the
// other implementation of the classes (package twins).
func (n *testNode) Call(method, class, name, path string, body any, status int, out any) http.Header {
	n.t.Helper()
	return n.call(method, class, name, path, body, status, out).header
}

func (n *testNode) CallErr(method, class, name, path string, body any, status int, code string) {
	n.t.Helper()
	n.callErr(method, class, name, path, body, status, code)
}

func (n *testNode) SQLInt(class, name, query string, params ...any) int64 {
	n.t.Helper()
	return n.sqlInt(class, name, query, params...)
}

func (n *testNode) SQLStrings(class, name, query string, params ...any) []string {
	n.t.Helper()
	return n.sqlStrings(class, name, query, params...)
}
