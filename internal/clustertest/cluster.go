// Package clustertest runs an in-process Dura cluster for tests: N nodes,
// each a runtime, a cluster member and an HTTP API on random loopback
// ports, with Kill, Restart, Leave, Join and WaitConverged.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/cluster"
	"github.com/dura-dev/dura/internal/freeport"
	"github.com/dura-dev/dura/internal/peer"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
	"github.com/prometheus/client_golang/prometheus"
)

// Node is one member of the test cluster.
type Node struct {
	Name    string
	Dir     string
	HTTP    string // host:port of the API
	Raft    string // host:port of Raft, kept across restarts
	Gossip  string // host:port of gossip, kept across restarts
	Secret  string // cluster secret this node holds
	RT      *node.Runtime
	Cluster *cluster.Cluster
	Client  *rpc.Client
	Metrics *prometheus.Registry // the cluster's metrics of this run of the node
	srv     *http.Server
	up      atomic.Bool // read by test goroutines while the test starts and stops nodes
}

// Cluster is a set of in-process nodes.
type Cluster struct {
	t        testing.TB
	done     atomic.Bool // set when the cluster is torn down
	dir      string
	register func(*node.Runtime) error
	tweak    func(*node.Config)
	// replication is the replica count the cluster is created with.
	replication replication.Replication
	mu          sync.Mutex // guards Nodes against Up in test goroutines
	Nodes       []*Node
}

// New starts n nodes that form one cluster (bootstrap-expect n). register
// adds classes to each runtime (nil: only "db").
func New(t testing.TB, n int, register func(*node.Runtime) error) *Cluster {
	t.Helper()
	return NewTweaked(t, n, register, nil)
}

// NewReplicated is New for a cluster that keeps factor copies of each
// partition, of which writes need min(2, factor) in sync.
func NewReplicated(t testing.TB, n, factor int, register func(*node.Runtime) error) *Cluster {
	t.Helper()
	return newCluster(t, n, register, nil, replication.Replication{Factor: factor, MinInSync: min(2, factor)})
}

// NewTweaked is New with tweak applied to every node's runtime config.
func NewTweaked(t testing.TB, n int, register func(*node.Runtime) error, tweak func(*node.Config)) *Cluster {
	t.Helper()
	return newCluster(t, n, register, tweak, replication.Replication{})
}

func newCluster(t testing.TB, n int, register func(*node.Runtime) error, tweak func(*node.Config), repl replication.Replication) *Cluster {
	t.Helper()
	c := &Cluster{t: t, dir: t.TempDir(), register: register, tweak: tweak, replication: repl}
	// Registered first, so nodes started before a failure are stopped too.
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			if nd.up.Load() {
				c.stop(nd, false)
			}
		}
		c.done.Store(true)
	})
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, c.newNode(fmt.Sprintf("n%d", i+1)))
	}
	var join []string
	for i, nd := range c.Nodes {
		c.start(nd, join, n)
		if i == 0 {
			join = []string{nd.Gossip}
		}
	}
	return c
}

// testWriter sends logs to t.Log, so only failing tests show them; after
// the cluster is torn down (gossip goroutines may still log) it drops them.
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// Secret is the cluster secret test nodes share: node traffic is TLS
// and gossip encrypted, as in production.
const Secret = "clustertest-shared-secret"

func (c *Cluster) newNode(name string) *Node {
	return &Node{Name: name, Dir: filepath.Join(c.dir, name), Secret: Secret}
}

func (c *Cluster) start(nd *Node, join []string, expect int) {
	t := c.t
	t.Helper()
	// First start: ports below the ephemeral range, so that no outgoing
	// connection takes one while the node is down; a restart binds the
	// same ones.
	if nd.HTTP == "" {
		for _, a := range []*string{&nd.HTTP, &nd.Raft, &nd.Gossip} {
			addr, err := freeport.Addr()
			if err != nil {
				t.Fatal(err)
			}
			*a = addr
		}
	}
	ln, err := net.Listen("tcp", nd.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t, &c.done}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", nd.Name)
	cfg := node.DefaultConfig(nd.Dir)
	cfg.NodeName = nd.Name
	cfg.HTTPAddr = nd.HTTP
	cfg.Logger = log
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	rt, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.register != nil {
		if err := c.register(rt); err != nil {
			t.Fatal(err)
		}
	}
	raftBind, gossipBind := nd.Raft, nd.Gossip
	peerTLS, err := peer.FromSecrets([]string{nd.Secret})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := peer.GossipKeys([]string{nd.Secret})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cl, err := cluster.New(rt, cluster.Config{
		Name: nd.Name, HTTP: nd.HTTP, GossipBind: gossipBind, RaftBind: raftBind, TLS: peerTLS, GossipKeys: keys,
		Dir: filepath.Join(nd.Dir, "raft"), Join: join, BootstrapExpect: expect, Timing: cluster.LoopbackTiming(), Logger: log,
		Replication: c.replication, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	nd.Raft, nd.Gossip = cl.Addrs()
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Router: cl, Internal: cl, Forwarder: cl.Forwarder()})
	cl.SetPeerHandler(srv.PeerHandler(cl.PeerSecure()))
	rt.SetObjectCaller(srv)
	nd.srv = &http.Server{Handler: srv.Handler()}
	go nd.srv.Serve(ln)
	nd.RT, nd.Cluster, nd.Metrics = rt, cl, reg
	nd.up.Store(true)
	nd.Client = rpc.NewClient("http://"+nd.HTTP, nil)
}

func (c *Cluster) stop(nd *Node, graceful bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if graceful {
		if err := nd.Cluster.Leave(ctx); err != nil {
			c.t.Errorf("%s leave: %v", nd.Name, err)
		}
	}
	nd.srv.Close()
	nd.Cluster.Close(graceful)
	nd.RT.Close(ctx)
	nd.up.Store(false)
}

// Kill stops node i abruptly: no leave, no handoff.
func (c *Cluster) Kill(i int) { c.stop(c.Nodes[i], false) }

// Leave makes node i hand off its partitions and leave, then stops it.
func (c *Cluster) Leave(i int) { c.stop(c.Nodes[i], true) }

// Restart starts a stopped node again with its data and addresses.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	nd := c.Nodes[i]
	c.start(nd, c.seeds(nd), 0)
}

// Join starts a new node that joins the cluster and returns its index.
func (c *Cluster) Join() int {
	c.t.Helper()
	return c.JoinWithSecret(Secret)
}

// JoinWithSecret starts a new node holding secret that tries to join the
// cluster and returns its index; with another secret it must stay out.
func (c *Cluster) JoinWithSecret(secret string) int {
	c.t.Helper()
	nd := c.newNode(fmt.Sprintf("n%d", len(c.Nodes)+1))
	nd.Secret = secret
	c.mu.Lock()
	c.Nodes = append(c.Nodes, nd)
	c.mu.Unlock()
	c.start(nd, c.seeds(nd), 0)
	return len(c.Nodes) - 1
}

func (c *Cluster) seeds(except *Node) []string {
	var out []string
	for _, nd := range c.Nodes {
		if nd != except && nd.up.Load() {
			out = append(out, nd.Gossip)
		}
	}
	return out
}

// Up lists the running nodes. Safe to call while the test starts and
// stops nodes.
func (c *Cluster) Up() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, nd := range c.Nodes {
		if nd.up.Load() {
			out = append(out, nd)
		}
	}
	return out
}

// WaitConverged waits until every running node reports the same epoch,
// every partition is ready, and every running node is an active member
// that is ready to serve.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	testutil.Poll(c.t, timeout, "cluster converged", c.converged)
}

func (c *Cluster) converged() string {
	ctx := context.Background()
	var epoch uint64
	for i, nd := range c.Up() {
		info, err := nd.RT.Cluster(ctx)
		if err != nil {
			return err.Error()
		}
		if i == 0 {
			epoch = info.Epoch
		} else if info.Epoch != epoch {
			return fmt.Sprintf("%s at epoch %d, others at %d", nd.Name, info.Epoch, epoch)
		}
		if info.Leader == "" {
			return nd.Name + " knows no leader"
		}
		if err := nd.RT.Ready(ctx); err != nil {
			return nd.Name + ": " + err.Error()
		}
		total := 0
		for _, m := range info.Members {
			total += m.Partitions
		}
		if total != info.Partitions {
			return fmt.Sprintf("%d of %d partitions owned", total, info.Partitions)
		}
	}
	return ""
}

// Leader is the running node that leads Raft, or nil.
func (c *Cluster) Leader() *Node {
	for _, nd := range c.Up() {
		info, err := nd.RT.Cluster(context.Background())
		if err == nil && info.Leader == nd.Name {
			return nd
		}
	}
	return nil
}
