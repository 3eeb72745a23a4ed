package rpc_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// fakeInternal answers the node-to-node routes with fixed values.
type fakeInternal struct{}

func (fakeInternal) ApplyCommand(context.Context, []byte) error { return nil }
func (fakeInternal) PartitionArchive(_ context.Context, _ int, _ string, _ uint64, _ bool, w io.Writer) error {
	_, err := io.WriteString(w, "archive")
	return err
}
func (fakeInternal) LocalObjects(context.Context, string, string, int) (rpc.ObjectList, error) {
	return rpc.ObjectList{}, nil
}
func (fakeInternal) CommitIndex(context.Context) (uint64, error) { return 7, nil }
func (fakeInternal) PartitionSnapshot(context.Context, int, string, http.ResponseWriter) error {
	return nil
}
func (fakeInternal) AdmitReplica(context.Context, int, string) error { return nil }
func (fakeInternal) ReceiveRecords(context.Context, string, []byte) (any, error) {
	return map[string]any{"acks": []any{}}, nil
}
func (fakeInternal) RemoveMember(context.Context, string) error { return nil }

// echo answers every call with 200.
type echo struct{}

func (echo) Fetch(w http.ResponseWriter, r *http.Request) error {
	_, err := io.WriteString(w, r.URL.Path)
	return err
}

const (
	adminToken = "admin-token-1"
	apiToken   = "api-token-1"
)

// authServers serves one runtime through the public handler, a trusted
// peer handler and a plain (untrusted) peer handler.
func authServers(t *testing.T, api string) (public, trusted, plain *httptest.Server) {
	t.Helper()
	cfg := node.DefaultConfig(t.TempDir())
	cfg.NodeName = "n1"
	reg := rpc.NewRegistry()
	cfg.Registerer = reg
	rt, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Register("echo", func(*node.State) (node.Object, error) { return echo{}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Registry: reg, Internal: fakeInternal{}, AdminToken: adminToken + ",admin-token-next", APIToken: api})
	public = httptest.NewServer(srv.Handler())
	trusted = httptest.NewServer(srv.PeerHandler(true))
	plain = httptest.NewServer(srv.PeerHandler(false))
	t.Cleanup(func() {
		public.Close()
		trusted.Close()
		plain.Close()
		rt.Close(context.Background())
	})
	return public, trusted, plain
}

func TestTokensAndScopes(t *testing.T) {
	type tc struct {
		name, method, path, token string
		headers                   map[string]string
		want                      int
		code                      string
	}
	withAPI := []tc{
		{"admin route, no token", "GET", "/v1/cluster", "", nil, 401, "UNAUTHENTICATED"},
		{"admin route, unknown token", "GET", "/v1/cluster", "nope", nil, 401, "UNAUTHENTICATED"},
		{"admin route, API token", "GET", "/v1/cluster", apiToken, nil, 403, "FORBIDDEN"},
		{"admin route, admin token", "GET", "/v1/cluster", adminToken, nil, 200, ""},
		{"admin route, second admin token (rotation)", "GET", "/v1/cluster", "admin-token-next", nil, 200, ""},
		{"admin route, both tokens at once", "GET", "/v1/cluster", adminToken + ",admin-token-next", nil, 401, "UNAUTHENTICATED"},
		{"admin route, token without Bearer", "GET", "/v1/cluster", "", map[string]string{"Authorization": adminToken}, 401, "UNAUTHENTICATED"},
		{"object call, no token", "POST", "/objects/echo/a/x", "", nil, 401, "UNAUTHENTICATED"},
		{"object call, unknown token", "POST", "/objects/echo/a/x", "nope", nil, 401, "UNAUTHENTICATED"},
		{"object call, API token", "POST", "/objects/echo/a/x", apiToken, nil, 200, ""},
		{"object call, admin token", "POST", "/objects/echo/a/x", adminToken, nil, 200, ""},
		{"method call, no token", "POST", "/rpc/echo/a/m", "", nil, 401, "UNAUTHENTICATED"},
		{"method call, API token", "POST", "/rpc/echo/a/m", apiToken, nil, 404, "NOT_FOUND"},
		{"module deploy, API token", "PUT", "/v1/modules/m", apiToken, nil, 403, "FORBIDDEN"},
		{"health open", "GET", "/healthz", "", nil, 200, ""},
		{"readiness open", "GET", "/readyz", "", nil, 200, ""},
		{"metrics open", "GET", "/metrics", "", nil, 200, ""},
		{"internal route hidden", "GET", "/v1/internal/commit", adminToken, nil, 404, "NOT_FOUND"},
		{"internal route hidden, escaped", "GET", "/v1/%69nternal/commit", adminToken, nil, 404, "NOT_FOUND"},
		{"record shipping hidden", "POST", "/v1/internal/replicate", adminToken, nil, 404, "NOT_FOUND"},
		{"snapshots hidden", "GET", "/v1/internal/partitions/1/snapshot", adminToken, nil, 404, "NOT_FOUND"},
		{"in-sync admission hidden", "POST", "/v1/internal/partitions/1/in-sync?member=x", adminToken, nil, 404, "NOT_FOUND"},
		{"forged caller ignored", "GET", "/v1/cluster", "", map[string]string{rpc.HeaderCaller: "admin"}, 401, "UNAUTHENTICATED"},
		{"forged hops do not skip auth", "GET", "/v1/cluster", "", map[string]string{rpc.HeaderHops: "1", rpc.HeaderCaller: "admin"}, 401, "UNAUTHENTICATED"},
	}
	withoutAPI := []tc{
		{"object call open without an API token", "POST", "/objects/echo/a/x", "", nil, 200, ""},
		{"method call open without an API token", "POST", "/rpc/echo/a/m", "", nil, 404, "NOT_FOUND"},
		{"admin route still guarded", "GET", "/v1/objects/db/x/kv", "", nil, 401, "UNAUTHENTICATED"},
	}
	for _, set := range []struct {
		api   string
		cases []tc
	}{{apiToken, withAPI}, {"", withoutAPI}} {
		public, _, _ := authServers(t, set.api)
		for _, c := range set.cases {
			t.Run(c.name, func(t *testing.T) {
				code, body := send(t, public.URL, c.method, c.path, c.token, c.headers)
				if code != c.want || c.code != "" && errCode(t, body) != c.code {
					t.Fatalf("%s %s: %d %s, want %d %s", c.method, c.path, code, body, c.want, c.code)
				}
			})
		}
	}
}

// TestPeerHandler: a trusted peer connection carries the caller the entry
// node authenticated; a plain one is checked like a client.
func TestPeerHandler(t *testing.T) {
	_, trusted, plain := authServers(t, apiToken)
	cases := []struct {
		name, url, path, token string
		want                   int
	}{
		{"trusted peer reaches internal routes", trusted.URL, "/v1/internal/commit", "", 200},
		{"trusted peer runs forwarded admin calls", trusted.URL, "/v1/cluster", "", 200},
		{"plain peer needs the admin token", plain.URL, "/v1/internal/commit", "", 401},
		{"plain peer with the admin token", plain.URL, "/v1/internal/commit", adminToken, 200},
		{"plain peer, API token, admin route", plain.URL, "/v1/internal/commit", apiToken, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := send(t, c.url, "GET", c.path, c.token, map[string]string{rpc.HeaderCaller: "admin"})
			if code != c.want {
				t.Fatalf("%d %s, want %d", code, body, c.want)
			}
		})
	}
}

func send(t *testing.T, base, method, path, token string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSeparateMetrics(t *testing.T) {
	cfg := node.DefaultConfig(t.TempDir())
	reg := rpc.NewRegistry()
	cfg.Registerer = reg
	rt, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Registry: reg, SeparateMetrics: true})
	api := httptest.NewServer(srv.Handler())
	defer api.Close()
	metrics := httptest.NewServer(srv.MetricsHandler())
	defer metrics.Close()
	if code, _ := send(t, api.URL, "GET", "/metrics", "", nil); code != 404 {
		t.Fatalf("/metrics on the API listener: %d", code)
	}
	if code, body := send(t, metrics.URL, "GET", "/metrics", "", nil); code != 200 || !strings.Contains(body, "dura_http_requests_total") && !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics on its own listener: %d", code)
	}
}
