package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/peer"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["serve"] = command{summary: "run a node (a one-node cluster by default)", run: runServe}
}

// serveConfig is everything "dura serve" takes from flags and environment.
type serveConfig struct {
	name             string
	data             string
	http             string
	gossip           string
	raft             string
	advertise        string
	join             string
	bootstrapExpect  int
	secret           string
	secretFile       string
	acceptSecrets    string
	tlsCert          string
	tlsKey           string
	tlsCA            string
	adminToken       string
	adminTokenFile   string
	apiToken         string
	apiTokenFile     string
	metricsAddr      string
	insecure         bool
	maxObjectBytes   int64
	maxOpenFiles     int
	alarmConcurrency int
	idleTimeout      time.Duration
	statementTimeout time.Duration
	shutdownTimeout  time.Duration
	requestWait      time.Duration
	logLevel         string
	logFormat        string
	debugAddr        string
}

// parseServe reads serve's flags (and DURA_* variables) with the defaults
// of a one-node cluster.
func parseServe(env *cliEnv, args []string) (serveConfig, error) {
	var c serveConfig
	host, _ := os.Hostname()
	if host == "" {
		host = "dura-1"
	}
	fs := newFlagSet(env, "serve", "serve [flags]")
	fs.StringVar(&c.name, "name", host, "node name, unique in the cluster")
	fs.StringVar(&c.data, "data", "./dura-data", "data directory")
	fs.StringVar(&c.http, "http", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.gossip, "gossip", "127.0.0.1:7946", "gossip listen address (cluster)")
	fs.StringVar(&c.raft, "raft", "127.0.0.1:7947", "Raft listen address (cluster)")
	fs.StringVar(&c.advertise, "advertise", "", "address other nodes and clients reach this node at (default: the HTTP address)")
	fs.StringVar(&c.join, "join", "", "comma-separated gossip addresses of members to join (cluster)")
	fs.IntVar(&c.bootstrapExpect, "bootstrap-expect", 0, "form the first cluster once this many nodes have met (cluster)")
	fs.StringVar(&c.secret, "secret", "", "cluster secret (16+ bytes): encrypts gossip and, without --tls-*, secures node-to-node traffic")
	fs.StringVar(&c.secretFile, "secret-file", "", "file holding the cluster secret (first line); further lines are accepted secrets, as --accept-secrets")
	fs.StringVar(&c.acceptSecrets, "accept-secrets", "", "comma-separated secrets also accepted from other nodes, for rotating the secret")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate this node presents to other nodes (mutual TLS with --tls-key, --tls-ca)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM CA certificates other nodes' certificates must chain to")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token required on /v1/ routes (comma-separated: each accepted, for rotation)")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file holding the admin token")
	fs.StringVar(&c.apiToken, "api-token", "", "bearer token required on /objects/ routes (the admin token works there too; comma-separated like --admin-token); open when empty")
	fs.StringVar(&c.apiTokenFile, "api-token-file", "", "file holding the API token")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the HTTP API's")
	fs.BoolVar(&c.insecure, "insecure", false, "allow listening beyond loopback without a cluster secret")
	fs.Int64Var(&c.maxObjectBytes, "max-object-bytes", 1<<30, "size limit of one object's database, in bytes")
	fs.IntVar(&c.maxOpenFiles, "max-open-files", 3072, "files open object databases may hold (3 per open object); LRU objects are closed past it")
	fs.IntVar(&c.alarmConcurrency, "alarm-concurrency", node.DefaultConfig("").AlarmConcurrency, "alarm runs at once on this node")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 5*time.Minute, "close an object's database after this long without events")
	fs.DurationVar(&c.statementTimeout, "statement-timeout", 5*time.Second, "time limit of one SQL call")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight events")
	fs.DurationVar(&c.requestWait, "request-wait", rpc.DefaultRequestWait, "how long a request waits for its object's owner while the cluster forms, catches up, elects or hands off, before 503 (never past the request's deadline; 0: answer at once)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go pprof on this (loopback) address; off when empty")
	if err := parseFlags(fs, env, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, usageErr("unexpected arguments %q", fs.Args())
	}
	return c, c.validate()
}

// requestWait maps the flag (0: no waiting) to rpc.ServerConfig's
// RequestWait (0: the default, negative: none).
func requestWait(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

func (c *serveConfig) validate() error {
	for _, f := range []struct {
		flag, file string
		to         *string
	}{{"--secret-file", c.secretFile, &c.secret}, {"--admin-token-file", c.adminTokenFile, &c.adminToken}, {"--api-token-file", c.apiTokenFile, &c.apiToken}} {
		if f.file == "" {
			continue
		}
		b, err := os.ReadFile(f.file)
		if err != nil {
			return usageErr("%s: %v", f.flag, err)
		}
		lines := strings.Fields(string(b))
		if len(lines) == 0 {
			return usageErr("%s: %s is empty", f.flag, f.file)
		}
		*f.to = lines[0]
		if f.to == &c.secret && len(lines) > 1 {
			c.acceptSecrets = strings.Join(append(lines[1:], c.acceptSecrets), ",")
		}
	}
	if c.secret == "" && c.acceptSecrets != "" {
		return usageErr("--accept-secrets needs --secret")
	}
	if c.secret != "" {
		if err := peer.CheckSecrets(c.secrets()); err != nil {
			return usageErr("--secret: %v", err)
		}
	}
	if (c.tlsCert == "") != (c.tlsKey == "") || (c.tlsCert == "") != (c.tlsCA == "") {
		return usageErr("--tls-cert, --tls-key and --tls-ca go together")
	}
	if c.apiToken != "" && c.apiToken == c.adminToken {
		return usageErr("--api-token must differ from --admin-token")
	}
	if c.bootstrapExpect < 0 {
		return usageErr("--bootstrap-expect must be 0 or more")
	}
	addrs := []struct{ flag, addr string }{{"--http", c.http}, {"--gossip", c.gossip}, {"--raft", c.raft}}
	if c.metricsAddr != "" {
		addrs = append(addrs, struct{ flag, addr string }{"--metrics-addr", c.metricsAddr})
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return usageErr("%s %q: %v", a.flag, a.addr, err)
		}
		if !isLoopback(host) && c.secret == "" && !c.insecure {
			return usageErr("%s %s listens beyond loopback without a cluster secret; set --secret (or DURA_SECRET, --secret-file), or pass --insecure to accept the risk", a.flag, a.addr)
		}
		if (host == "" || host == "0.0.0.0" || host == "::") && c.advertise == "" {
			return usageErr("%s %s listens on every interface: give --advertise with the address other nodes reach this one at", a.flag, a.addr)
		}
	}
	if c.debugAddr != "" {
		host, _, err := net.SplitHostPort(c.debugAddr)
		if err != nil || !isLoopback(host) {
			return usageErr("--debug-addr %q must be a loopback host:port", c.debugAddr)
		}
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		return usageErr("--log-level: %v", err)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return usageErr("--log-format must be text or json")
	}
	return nil
}

// secrets lists the cluster secret first, then the accepted ones.
func (c *serveConfig) secrets() []string {
	all := []string{c.secret}
	for _, s := range strings.Split(c.acceptSecrets, ",") {
		if s = strings.TrimSpace(s); s != "" {
			all = append(all, s)
		}
	}
	return all
}

// peerSecurity is the TLS configuration of the peer port and the gossip
// keys: certificates when given, else derived from the secret; nil (plain)
// without either.
func (c *serveConfig) peerSecurity() (*tls.Config, [][]byte, error) {
	if c.secret == "" && c.tlsCert == "" {
		return nil, nil, nil
	}
	var keys [][]byte
	var err error
	if c.secret != "" {
		if keys, err = peer.GossipKeys(c.secrets()); err != nil {
			return nil, nil, err
		}
	}
	var conf *tls.Config
	if c.tlsCert != "" {
		conf, err = peer.FromFiles(c.tlsCert, c.tlsKey, c.tlsCA)
	} else {
		conf, err = peer.FromSecrets(c.secrets())
	}
	return conf, keys, err
}

// isLoopback reports whether host only listens on the loopback interface.
// An empty host or 0.0.0.0 listens everywhere.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	c, err := parseServe(env, args)
	if err != nil {
		return err
	}
	level, _ := parseLevel(c.logLevel)
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(env.stderr, opts)
	if c.logFormat == "json" {
		handler = slog.NewJSONHandler(env.stderr, opts)
	}
	log := slog.New(handler).With("node", c.name)

	ln, err := net.Listen("tcp", c.http)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.http, err)
	}
	advertise := advertiseAddr(c.advertise, ln.Addr().String())
	reg := rpc.NewRegistry()
	cfg := node.DefaultConfig(c.data)
	cfg.NodeName = c.name
	cfg.HTTPAddr = advertise
	cfg.IdleTimeout = c.idleTimeout
	cfg.MaxOpenFiles = c.maxOpenFiles
	cfg.AlarmConcurrency = c.alarmConcurrency
	cfg.MaxObjectBytes = c.maxObjectBytes
	cfg.StatementTimeout = c.statementTimeout
	cfg.Logger = log
	cfg.Registerer = reg
	rt, err := node.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	if err := examples.RegisterAll(rt); err != nil {
		ln.Close()
		return err
	}
	peerTLS, gossipKeys, err := c.peerSecurity()
	if err != nil {
		ln.Close()
		return err
	}
	var join []string
	if c.join != "" {
		join = strings.Split(c.join, ",")
	}
	cl, err := node.NewCluster(rt, node.ClusterConfig{
		Name: c.name, HTTP: advertise,
		GossipBind: c.gossip, GossipAdvertise: advertiseIf(c.advertise, c.gossip),
		RaftBind: c.raft, RaftAdvertise: advertiseIf(c.advertise, c.raft),
		Dir: filepath.Join(c.data, "raft"), Join: join, BootstrapExpect: c.bootstrapExpect,
		TLS: peerTLS, GossipKeys: gossipKeys, AdminToken: c.adminToken, Logger: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if err := rt.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	if err := cl.Start(ctx); err != nil {
		ln.Close()
		rt.Close(context.Background())
		return err
	}
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Router: cl, Internal: cl, Forwarder: cl.Forwarder(), Logger: log, Registry: reg,
		AdminToken: c.adminToken, APIToken: c.apiToken, SeparateMetrics: c.metricsAddr != "", RequestWait: requestWait(c.requestWait)})
	cl.SetPeerHandler(srv.PeerHandler(cl.PeerSecure()))
	rt.SetObjectCaller(srv)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
	if c.metricsAddr != "" {
		mln, err := net.Listen("tcp", c.metricsAddr)
		if err != nil {
			ln.Close()
			cl.Close(false)
			rt.Close(context.Background())
			return fmt.Errorf("listen %s: %w", c.metricsAddr, err)
		}
		ms := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(mln)
		defer ms.Close()
	}
	if c.debugAddr != "" {
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			log.Warn("pprof server stopped", "err", http.ListenAndServe(c.debugAddr, mux))
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("serving", "http", ln.Addr().String(), "data", c.data, "classes", strings.Join(slices.Sorted(slices.Values(rt.Classes())), ","))
	fmt.Fprintf(env.stderr, "dura: node %s serving on http://%s (data in %s)\n", c.name, ln.Addr(), c.data)

	go waitReady(ctx, rt, log)

	select {
	case err := <-errc:
		cl.Close(false)
		rt.Close(context.Background())
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	// Leave first (others pull our partitions over HTTP, so it keeps
	// serving), then stop accepting, let in-flight requests and their
	// events finish, and close the runtime, which waits for WaitUntil work.
	log.Info("shutting down", "timeout", c.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	graceful := len(cl.State().ActiveMembers()) > 1
	var lerr error
	if graceful {
		log.Info("leaving the cluster: handing partitions off")
		lerr = cl.Leave(sctx)
	}
	herr := hs.Shutdown(sctx)
	cerr := cl.Close(graceful && lerr == nil)
	rerr := rt.Close(sctx)
	if err := errors.Join(lerr, herr, cerr, rerr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// waitReady logs once the node serves: joined, leader known, partitions
// ready.
func waitReady(ctx context.Context, rt *node.Runtime, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := rt.Ready(ctx); err == nil {
			log.Info("ready")
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// advertiseAddr is what others dial for a listener bound at bound: the
// --advertise host (with its own port if it has one) or the bound address.
func advertiseAddr(advertise, bound string) string {
	if advertise == "" {
		return bound
	}
	if _, _, err := net.SplitHostPort(advertise); err == nil {
		return advertise
	}
	_, port, _ := net.SplitHostPort(bound)
	return net.JoinHostPort(advertise, port)
}

// advertiseIf is the advertised address of a cluster listener: empty (the
// bound one) without --advertise, else the --advertise host with the
// listener's port.
func advertiseIf(advertise, bound string) string {
	if advertise == "" {
		return ""
	}
	host := advertise
	if h, _, err := net.SplitHostPort(advertise); err == nil {
		host = h
	}
	_, port, _ := net.SplitHostPort(bound)
	return net.JoinHostPort(host, port)
}
