package main

import (
	"context"
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
	adminToken       string
	insecure         bool
	maxObjectBytes   int64
	maxOpenFiles     int
	idleTimeout      time.Duration
	statementTimeout time.Duration
	shutdownTimeout  time.Duration
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
	fs.StringVar(&c.secret, "secret", "", "cluster secret")
	fs.StringVar(&c.secretFile, "secret-file", "", "file holding the cluster secret")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token required on /v1/ routes (except /healthz, /readyz)")
	fs.BoolVar(&c.insecure, "insecure", false, "allow listening beyond loopback without a cluster secret")
	fs.Int64Var(&c.maxObjectBytes, "max-object-bytes", 1<<30, "size limit of one object's database, in bytes")
	fs.IntVar(&c.maxOpenFiles, "max-open-files", 3072, "files open object databases may hold (3 per open object); LRU objects are closed past it")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 5*time.Minute, "close an object's database after this long without events")
	fs.DurationVar(&c.statementTimeout, "statement-timeout", 5*time.Second, "time limit of one SQL call")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight events")
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

func (c *serveConfig) validate() error {
	if c.secretFile != "" {
		b, err := os.ReadFile(c.secretFile)
		if err != nil {
			return usageErr("--secret-file: %v", err)
		}
		c.secret = strings.TrimSpace(string(b))
	}
	if c.bootstrapExpect < 0 {
		return usageErr("--bootstrap-expect must be 0 or more")
	}
	for _, a := range []struct{ flag, addr string }{{"--http", c.http}, {"--gossip", c.gossip}, {"--raft", c.raft}} {
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
	var join []string
	if c.join != "" {
		join = strings.Split(c.join, ",")
	}
	cl, err := node.NewCluster(rt, node.ClusterConfig{
		Name: c.name, HTTP: advertise,
		GossipBind: c.gossip, GossipAdvertise: advertiseIf(c.advertise, c.gossip),
		RaftBind: c.raft, RaftAdvertise: advertiseIf(c.advertise, c.raft),
		Dir: filepath.Join(c.data, "raft"), Join: join, BootstrapExpect: c.bootstrapExpect,
		AdminToken: c.adminToken, Logger: log,
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
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Router: cl, Internal: cl, Logger: log, Registry: reg, AdminToken: c.adminToken})
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
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
