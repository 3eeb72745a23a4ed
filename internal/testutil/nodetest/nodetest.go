// Package nodetest is the single-node test harness: one node runtime behind
// the HTTP API on a random local port, stopped when the test ends. It is
// for the tests of packages that node and rpc do not import (rpc's and
// examples' external tests, cmd/dura); the in-process cluster harness is
// internal/clustertest.
package nodetest

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// Options says how to start a node; the zero value is a node named "test"
// on a temporary directory with no classes and no admin token.
type Options struct {
	// Dir is the node's data directory; "" means a new t.TempDir().
	Dir string
	// Name is the node name; "" means "test".
	Name string
	// AdminToken guards the admin routes; the client carries it.
	AdminToken string
	// Config, when set, may change the configuration last.
	Config func(*node.Config)
	// Register, when set, registers classes before the node starts.
	Register func(*node.Runtime) error
	// Modules, when set, serves /v1/modules (JavaScript classes) on the
	// runtime.
	Modules func(*node.Runtime) (rpc.Modules, error)
}

// Node is a started node and its API.
type Node struct {
	RT     *node.Runtime
	Server *httptest.Server
	URL    string      // the API's base URL
	Client *rpc.Client // a client of the API, with the admin token

	stopOnce sync.Once
	stopErr  error
}

// StartNode starts a node as opts says. At the end of the test the API
// server closes and then the runtime, and an error closing the runtime
// fails the test.
func StartNode(t testing.TB, opts Options) *Node {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	cfg := node.DefaultConfig(opts.Dir)
	cfg.NodeName = opts.Name
	if cfg.NodeName == "" {
		cfg.NodeName = "test"
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	reg := rpc.NewRegistry()
	cfg.Registerer = reg
	rt, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Register != nil {
		if err := opts.Register(rt); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	scfg := rpc.ServerConfig{Backend: rt, Registry: reg, AdminToken: opts.AdminToken}
	if opts.Modules != nil {
		if scfg.Modules, err = opts.Modules(rt); err != nil {
			t.Fatal(err)
		}
	}
	srv := rpc.NewServer(scfg)
	ts := httptest.NewServer(srv.Handler())
	n := &Node{RT: rt, Server: ts, URL: ts.URL, Client: rpc.NewClient(ts.URL, nil).WithToken(opts.AdminToken)}
	t.Cleanup(func() {
		ts.Close()
		if err := n.Stop(); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return n
}

// Stop closes the runtime, waiting up to 10 s for its events and WaitUntil
// work. Later calls return the first call's error; the API server stays up
// (answering that the node is closed) until the test ends.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.stopErr = n.RT.Close(ctx)
	})
	return n.stopErr
}
