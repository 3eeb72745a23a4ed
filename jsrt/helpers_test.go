package jsrt_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/testutil/nodetest"
	"github.com/dura-dev/dura/jsrt"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// jsNode is one node with the example Go classes and a JavaScript host,
// served by the HTTP API.
type jsNode struct {
	t    *testing.T
	url  string
	host *jsrt.Host
	nd   *nodetest.Node
}

type nodeOpts struct {
	cpuLimit time.Duration
	config   func(*node.Config)
}

func startJS(t *testing.T, o nodeOpts) *jsNode {
	t.Helper()
	n := &jsNode{t: t}
	n.nd = nodetest.StartNode(t, nodetest.Options{
		Register: examples.RegisterAll,
		Config:   o.config,
		Modules: func(rt *node.Runtime) (rpc.Modules, error) {
			h, err := jsrt.New(jsrt.Config{Runtime: rt, CPULimit: o.cpuLimit})
			n.host = h
			return h, err
		},
	})
	n.url = n.nd.URL
	return n
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return string(r.body) }

// code is the API error code of an error answer, "" otherwise.
func (r response) code() string {
	var e rpc.ErrorBody
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func (r response) message() string {
	var e rpc.ErrorBody
	json.Unmarshal(r.body, &e)
	return e.Error.Message
}

// json decodes the body into a map (or fails the test).
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d %q is not a JSON object: %v", r.status, r.body, err)
	}
	return m
}

func (n *jsNode) do(method, path, contentType, body string) response {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(b)}
}

// deploy uploads a TypeScript module and fails the test unless it is 200.
func (n *jsNode) deploy(module, src string) response {
	n.t.Helper()
	r := n.do("PUT", "/v1/modules/"+module, "", src)
	if r.status != 200 {
		n.t.Fatalf("deploy %s: %d %s", module, r.status, r.body)
	}
	return r
}

// call calls an RPC method with JSON args.
func (n *jsNode) call(class, name, method string, args ...any) response {
	n.t.Helper()
	b, _ := json.Marshal(args)
	if args == nil {
		b = []byte("[]")
	}
	return n.do("POST", "/rpc/"+class+"/"+name+"/"+method, "application/json", string(b))
}

// want fails the test unless r has the status (and, if given, the error
// code).
func want(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || code != "" && r.code() != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}
