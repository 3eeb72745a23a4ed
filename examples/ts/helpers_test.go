package ts_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/dura-dev/dura/internal/testutil/nodetest"
	"github.com/dura-dev/dura/jsrt"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// tsNode is one node with a JavaScript host, served by the HTTP API.
type tsNode struct {
	t   *testing.T
	url string
}

// startNode runs a node on dir ("" for a new one) and deploys the named
// modules (files of this directory, without ".ts").
func startNode(t *testing.T, dir string, modules ...string) *tsNode {
	t.Helper()
	nd := nodetest.StartNode(t, nodetest.Options{
		Dir: dir,
		Modules: func(rt *node.Runtime) (rpc.Modules, error) {
			return jsrt.New(jsrt.Config{Runtime: rt})
		},
	})
	n := &tsNode{t: t, url: nd.URL}
	for _, m := range modules {
		n.deploy(m, source(t, m))
	}
	return n
}

func source(t *testing.T, module string) string {
	t.Helper()
	b, err := os.ReadFile(module + ".ts")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (n *tsNode) deploy(module, src string) {
	n.t.Helper()
	r := n.do("PUT", "/v1/modules/"+module, src)
	if r.status != 200 {
		n.t.Fatalf("deploy %s: %d %s", module, r.status, r.body)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorCode() string {
	var e rpc.ErrorBody
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// do sends a request; body is sent as is if it is a string and as JSON
// otherwise.
func (n *tsNode) do(method, path string, body any) response {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
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
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// call sends a request to an object, checks the status and decodes the
// answer into out (if not nil).
func (n *tsNode) call(method, class, name, path string, body any, status int, out any) response {
	n.t.Helper()
	r := n.do(method, "/objects/"+class+"/"+name+path, body)
	if r.status != status {
		n.t.Fatalf("%s %s/%s%s: status %d, want %d; body %s", method, class, name, path, r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			n.t.Fatalf("%s %s/%s%s: decode %s: %v", method, class, name, path, r.body, err)
		}
	}
	return r
}

// callErr sends a request that must fail with status and code.
func (n *tsNode) callErr(method, class, name, path string, body any, status int, code string) {
	n.t.Helper()
	r := n.call(method, class, name, path, body, status, nil)
	if got := r.errorCode(); got != code {
		n.t.Fatalf("%s %s/%s%s: error code %q, want %q; body %s", method, class, name, path, got, code, r.body)
	}
}

// sql runs one statement through the admin route and returns its rows.
func (n *tsNode) sql(class, name, query string, params ...any) [][]any {
	n.t.Helper()
	if params == nil {
		params = []any{}
	}
	r := n.do("POST", "/v1/objects/"+class+"/"+name+"/sql", map[string]any{"sql": query, "params": params})
	if r.status != 200 {
		n.t.Fatalf("sql %q: %d %s", query, r.status, r.body)
	}
	var res rpc.SQLResponse
	if err := json.Unmarshal(r.body, &res); err != nil || len(res.Results) != 1 {
		n.t.Fatalf("sql %q: %s (%v)", query, r.body, err)
	}
	return res.Results[0].Rows
}

func (n *tsNode) sqlInt(class, name, query string, params ...any) int64 {
	n.t.Helper()
	rows := n.sql(class, name, query, params...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		n.t.Fatalf("sql %q: want one value, got %v", query, rows)
	}
	f, ok := rows[0][0].(float64)
	if !ok {
		n.t.Fatalf("sql %q: %v is not a number", query, rows[0][0])
	}
	return int64(f)
}

func (n *tsNode) sqlStrings(class, name, query string, params ...any) []string {
	n.t.Helper()
	var out []string
	for _, row := range n.sql(class, name, query, params...) {
		out = append(out, fmt.Sprint(row[0]))
	}
	return out
}

// Call, CallErr, SQLInt and SQLStrings serve the checks shared with the
// other implementation of the classes (package twins).
func (n *tsNode) Call(method, class, name, path string, body any, status int, out any) http.Header {
	n.t.Helper()
	return n.call(method, class, name, path, body, status, out).header
}

func (n *tsNode) CallErr(method, class, name, path string, body any, status int, code string) {
	n.t.Helper()
	n.callErr(method, class, name, path, body, status, code)
}

func (n *tsNode) SQLInt(class, name, query string, params ...any) int64 {
	n.t.Helper()
	return n.sqlInt(class, name, query, params...)
}

func (n *tsNode) SQLStrings(class, name, query string, params ...any) []string {
	n.t.Helper()
	return n.sqlStrings(class, name, query, params...)
}

// rpc calls a method with JSON arguments and returns its JSON result.
func (n *tsNode) rpc(class, name, method string, args ...any) json.RawMessage {
	n.t.Helper()
	if args == nil {
		args = []any{}
	}
	r := n.do("POST", "/rpc/"+class+"/"+name+"/"+method, args)
	if r.status != 200 {
		n.t.Fatalf("%s/%s %s: %d %s", class, name, method, r.status, r.body)
	}
	return json.RawMessage(strings.TrimSpace(string(r.body)))
}

// plan is SQLite's plan for query, its steps joined by "; ".
func (n *tsNode) plan(class, name, query string, params ...any) string {
	n.t.Helper()
	var steps []string
	for _, row := range n.sql(class, name, "EXPLAIN QUERY PLAN "+query, params...) {
		steps = append(steps, fmt.Sprint(row[len(row)-1]))
	}
	return strings.Join(steps, "; ")
}
