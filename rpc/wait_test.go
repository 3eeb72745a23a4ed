package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// flakyRouter refuses (unrun) until open is called, then serves here.
type flakyRouter struct {
	mu      sync.Mutex
	open    bool
	changed chan struct{}
	routes  atomic.Int64
	refusal error
}

func newFlakyRouter(refusal error) *flakyRouter {
	return &flakyRouter{changed: make(chan struct{}), refusal: refusal}
}

func (f *flakyRouter) Route(class, name string) (rpc.Peer, bool, error) {
	f.routes.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open {
		return rpc.Peer{}, false, f.refusal
	}
	return rpc.Peer{}, true, nil
}

func (f *flakyRouter) Epoch() uint64 { return 1 }

func (f *flakyRouter) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *flakyRouter) openUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open = true
	close(f.changed)
	f.changed = make(chan struct{})
}

func startRouted(t *testing.T, router rpc.Router, wait time.Duration, maxWaiting int) string {
	t.Helper()
	cfg := node.DefaultConfig(t.TempDir())
	cfg.NodeName = "n1"
	rt, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Router: router, RequestWait: wait, MaxWaiting: maxWaiting})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		rt.Close(context.Background())
	})
	return ts.URL
}

func postSQL(t *testing.T, url, obj string) (int, http.Header, rpc.ErrorBody) {
	t.Helper()
	a := post(url, obj)
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.code, a.header, a.body
}

// answer is what post got.
type answer struct {
	code   int
	header http.Header
	body   rpc.ErrorBody
	err    error
}

func post(url, obj string) answer {
	resp, err := http.Post(url+"/v1/objects/db/"+obj+"/sql", "application/json",
		strings.NewReader(`{"sql":"CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1)"}`))
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e rpc.ErrorBody
	json.Unmarshal(b, &e)
	return answer{code: resp.StatusCode, header: resp.Header, body: e}
}

// postAsync posts from another goroutine; the answer comes on the channel.
func postAsync(url, obj string) <-chan answer {
	done := make(chan answer, 1)
	go func() { done <- post(url, obj) }()
	return done
}

// waitRoutes waits until the router has been asked n times.
func waitRoutes(t *testing.T, router *flakyRouter, n int64) {
	t.Helper()
	testutil.Poll(t, 5*time.Second, "requests reach the router", func() string {
		if got := router.routes.Load(); got < n {
			return fmt.Sprintf("%d routes, want %d", got, n)
		}
		return ""
	})
}

var formingRefusal = apierr.NotExecuted(fmt.Errorf("%w: cluster not formed yet", apierr.ErrOwnerUnavailable))

// TestRequestWaitsForItsOwner: a request whose owner is briefly
// unavailable waits and then runs, instead of failing at once.
func TestRequestWaitsForItsOwner(t *testing.T) {
	router := newFlakyRouter(formingRefusal)
	url := startRouted(t, router, 5*time.Second, 0)
	done := postAsync(url, "a")
	waitRoutes(t, router, 2) // refused once, waiting
	router.openUp()
	if a := <-done; a.err != nil || a.code != http.StatusOK {
		t.Fatalf("status %d %+v %v, want 200 after waiting", a.code, a.body, a.err)
	}
}

// TestRequestWaitEnds: past the wait, OWNER_UNAVAILABLE with Retry-After
// and not_executed; a refusal that is not a brief unavailability is
// answered at once; too many waiters get 503 at once.
func TestRequestWaitEnds(t *testing.T) {
	t.Run("wait over", func(t *testing.T) {
		router := newFlakyRouter(formingRefusal)
		url := startRouted(t, router, 300*time.Millisecond, 0)
		start := time.Now()
		code, h, e := postSQL(t, url, "a")
		if code != http.StatusServiceUnavailable || e.Error.Code != "OWNER_UNAVAILABLE" || !e.Error.NotExecuted || h.Get("Retry-After") == "" {
			t.Fatalf("%d %+v %v", code, e, h)
		}
		if waited := time.Since(start); waited < 300*time.Millisecond || router.routes.Load() < 2 {
			t.Fatalf("answered after %s and %d tries: it did not wait", waited, router.routes.Load())
		}
	})
	t.Run("no waiting for a refusal that may have run", func(t *testing.T) {
		router := newFlakyRouter(fmt.Errorf("%w: lost connection after sending", apierr.ErrOwnerUnavailable))
		url := startRouted(t, router, 5*time.Second, 0)
		if code, _, e := postSQL(t, url, "a"); code != http.StatusServiceUnavailable || e.Error.NotExecuted || router.routes.Load() != 1 {
			t.Fatalf("%d %+v after %d tries", code, e, router.routes.Load())
		}
	})
	t.Run("bounded waiters", func(t *testing.T) {
		router := newFlakyRouter(formingRefusal)
		url := startRouted(t, router, 2*time.Second, 1)
		done := postAsync(url, "first")
		waitRoutes(t, router, 2) // the first one waits
		start := time.Now()
		if code, _, _ := postSQL(t, url, "second"); code != http.StatusServiceUnavailable || time.Since(start) > time.Second {
			t.Fatalf("second waiter: %d after %s, want 503 at once", code, time.Since(start))
		}
		router.openUp()
		if a := <-done; a.err != nil || a.code != http.StatusOK {
			t.Fatalf("the first waiter got %d %v", a.code, a.err)
		}
	})
	t.Run("negative wait answers at once", func(t *testing.T) {
		router := newFlakyRouter(formingRefusal)
		url := startRouted(t, router, -1, 0)
		if code, _, _ := postSQL(t, url, "a"); code != http.StatusServiceUnavailable || router.routes.Load() != 1 {
			t.Fatalf("%d after %d tries", code, router.routes.Load())
		}
	})
}

// TestPeerClientKeepsCodes: a node-to-node call answered with an API error
// comes back with the other node's code, status and message, and the API
// passes it on unchanged; an unreachable node is OWNER_UNAVAILABLE, not
// executed, naming the node and nothing internal.
func TestPeerClientKeepsCodes(t *testing.T) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(rpc.HeaderError, "CONSTRAINT")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":{"code":"CONSTRAINT","message":"alarm changed meanwhile"}}`))
	}))
	defer leader.Close()
	pc := rpc.NewPeerClient(&http.Client{Transport: rpc.NewPeerTransport(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	})}, "tok")
	addr := strings.TrimPrefix(leader.URL, "http://")
	_, err := pc.Call(context.Background(), rpc.Peer{Name: "n1", Addr: addr}, "POST", "/v1/internal/apply", []byte("{}"))
	if code, status := apierr.Code(err); code != "CONSTRAINT" || status != http.StatusConflict {
		t.Fatalf("%v: %s %d", err, code, status)
	}
	// Through the API: same code and status, the message unprefixed.
	rec := httptest.NewRecorder()
	rpc.WriteError(rec, fmt.Errorf("apply: %w", err))
	var e rpc.ErrorBody
	json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusConflict || e.Error.Code != "CONSTRAINT" || e.Error.Message != "alarm changed meanwhile" || rec.Header().Get(rpc.HeaderError) != "CONSTRAINT" {
		t.Fatalf("%d %+v", rec.Code, e)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	_, err = pc.Call(context.Background(), rpc.Peer{Name: "n7", Addr: dead}, "GET", "/v1/internal/commit", nil)
	if code, _ := apierr.Code(err); code != "OWNER_UNAVAILABLE" || !apierr.IsNotExecuted(err) || err.Error() != "node n7 is unreachable" {
		t.Fatalf("unreachable node: %q code %s not executed %v", err, code, apierr.IsNotExecuted(err))
	}
}
