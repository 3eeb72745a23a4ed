package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dura-dev/dura/cluster"
	"github.com/dura-dev/dura/internal/logging"
	"github.com/dura-dev/dura/jsrt"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

// Register adds object classes to a runtime before it starts, calling
// rt.Register for each; examples.RegisterAll is one.
type Register func(rt *node.Runtime) error

// Main runs a node from the command line of the program: flags from
// os.Args and DURA_* variables, stopped by SIGTERM or SIGINT. It exits
// the process: 0 after a clean stop or --help, 2 on a usage error, 1 on
// any other. The class "db" is always there; register adds the others.
func Main(register ...Register) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	prog := filepath.Base(os.Args[0])
	cfg, err := ParseFlags(prog+" [flags]", os.Args[1:], os.Getenv, os.Stderr)
	if err == nil {
		err = Run(ctx, cfg, register...)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(1)
	}
}

// Run serves a node until ctx ends, then leaves the cluster gracefully and
// stops. It registers the classes through register before the node
// starts. cfg is validated first (its *-file flags read).
func Run(ctx context.Context, cfg Config, register ...Register) error {
	c := cfg
	if err := c.readFiles(); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	out, handler, banner := c.logHandlers()
	log := slog.New(handler).With("node", c.Name)

	unlock, err := lockData(c.Data)
	if err != nil {
		return err
	}
	defer unlock()
	partitions, err := dataPartitions(c.Data, c.Partitions)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.HTTP)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.HTTP, err)
	}
	advertise := advertiseAddr(c.Advertise, ln.Addr().String())
	reg := rpc.NewRegistry()
	rt, cl, js, err := c.newNode(partitions, advertise, log, reg, register)
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
	srv := rpc.NewServer(rpc.ServerConfig{Backend: rt, Router: cl, Internal: cl, Forwarder: cl.Forwarder(), Logger: log, Registry: reg, Modules: js,
		AdminToken: c.AdminToken, APIToken: c.APIToken, SeparateMetrics: c.MetricsAddr != "", RequestWait: requestWait(c.RequestWait)})
	cl.SetPeerHandler(srv.PeerHandler(cl.PeerSecure()))
	rt.SetObjectCaller(srv)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
	stopExtras, err := c.serveExtras(srv, log)
	if err != nil {
		ln.Close()
		cl.Close(false)
		rt.Close(context.Background())
		return err
	}
	defer stopExtras()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("serving", "http", ln.Addr().String(), "data", c.Data, "classes", strings.Join(slices.Sorted(slices.Values(rt.Classes())), ","))
	if line := fmt.Sprintf("dura: node %s serving on http://%s (data in %s)", c.Name, ln.Addr(), c.Data); banner != nil {
		slog.New(banner).Info(line, "node", c.Name)
	} else {
		fmt.Fprintln(out, line)
	}

	go waitReady(ctx, rt, log)

	select {
	case err := <-errc:
		cl.Close(false)
		rt.Close(context.Background())
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	return c.shutdown(hs, cl, rt, log)
}

// shutdown leaves first (others pull our partitions over HTTP, so it
// keeps serving), then stops accepting, lets in-flight requests and their
// events finish, and closes the runtime, which waits for WaitUntil work.
func (c *Config) shutdown(hs *http.Server, cl *cluster.Cluster, rt *node.Runtime, log *slog.Logger) error {
	log.Info("shutting down", "timeout", c.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
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

// logHandlers are where logs go, their handler (text or JSON, at the
// level asked) and, in JSON, the banner's: the banner is written whatever
// --log-level says (scripts wait for it), and in JSON it is a log record
// like every other line.
func (c *Config) logHandlers() (out io.Writer, handler, banner slog.Handler) {
	out = c.Output
	if out == nil {
		out = os.Stderr
	}
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: logging.ReplaceAttr}
	handler = slog.NewTextHandler(out, opts)
	if c.LogFormat == "json" {
		handler = slog.NewJSONHandler(out, opts)
		banner = slog.NewJSONHandler(out, &slog.HandlerOptions{ReplaceAttr: logging.ReplaceAttr})
	}
	return out, handler, banner
}

// newNode builds the runtime with the classes registered, and its cluster.
func (c *Config) newNode(partitions int, advertise string, log *slog.Logger, reg *prometheus.Registry, register []Register) (*node.Runtime, *cluster.Cluster, *jsrt.Host, error) {
	ncfg := node.DefaultConfig(c.Data)
	ncfg.NodeName = c.Name
	ncfg.Partitions = partitions
	ncfg.HTTPAddr = advertise
	ncfg.IdleTimeout = c.IdleTimeout
	ncfg.ReleaseAfter = c.ReleaseAfter
	ncfg.MaxOpenFiles = c.MaxOpenFiles
	ncfg.MaxObjects = c.MaxObjects
	ncfg.AlarmConcurrency = c.AlarmConcurrency
	ncfg.MaxObjectBytes = c.MaxObjectBytes
	ncfg.StatementTimeout = c.StatementTimeout
	ncfg.NodeLog = c.NodeLog
	ncfg.PITRRetention = c.PITRRetention
	ncfg.Logger = log
	ncfg.Registerer = reg
	rt, err := node.New(ncfg)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, r := range register {
		if err := r(rt); err != nil {
			return nil, nil, nil, err
		}
	}
	store := &clusterModules{}
	js, err := jsrt.New(jsrt.Config{Runtime: rt, Store: store, CPULimit: c.JSCPULimit, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	peerTLS, gossipKeys, err := c.peerSecurity()
	if err != nil {
		return nil, nil, nil, err
	}
	var join []string
	if c.Join != "" {
		join = strings.Split(c.Join, ",")
	}
	ring := placement.DefaultRingConfig()
	ring.Partitions = partitions
	cl, err := cluster.New(rt, cluster.Config{
		Name: c.Name, HTTP: advertise,
		GossipBind: c.Gossip, GossipAdvertise: advertiseIf(c.Advertise, c.Gossip),
		RaftBind: c.Raft, RaftAdvertise: advertiseIf(c.Advertise, c.Raft),
		Dir: filepath.Join(c.Data, "raft"), Join: join, BootstrapExpect: c.BootstrapExpect, Ring: ring,
		Replication: replication.Replication{Factor: c.ReplicationFactor, MinInSync: c.minInSync()}, Registerer: reg, DeadMemberTimeout: c.DeadMemberTimeout,
		TLS: peerTLS, GossipKeys: gossipKeys, AdminToken: c.AdminToken, Logger: log,
		OnModules: func(ms []replication.Module) { js.SyncLater(records(ms)) },
	})
	if err != nil {
		return nil, nil, nil, err
	}
	store.cl = cl
	return rt, cl, js, nil
}

// serveExtras starts the separate metrics listener and pprof, if asked;
// stop closes the metrics listener.
func (c *Config) serveExtras(srv *rpc.Server, log *slog.Logger) (stop func(), err error) {
	stop = func() {}
	if c.MetricsAddr != "" {
		mln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return stop, fmt.Errorf("listen %s: %w", c.MetricsAddr, err)
		}
		ms := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(mln)
		stop = func() { ms.Close() }
	}
	if c.DebugAddr != "" {
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			log.Warn("pprof server stopped", "err", http.ListenAndServe(c.DebugAddr, mux))
		}()
	}
	return stop, nil
}

// partitionsFile records in the data directory the partition count its
// node runs with: objects' partitions and the Raft state depend on it.
const partitionsFile = "partition-count"

// dataPartitions is the partition count a node on dir runs with: the one
// recorded there (a data directory of a version before the file holds
// 271, the only count there was), else flag, else 271. A flag that
// differs from the recorded count is refused: serving with it would put
// objects in other partitions than the cluster's.
func dataPartitions(dir string, flag int) (int, error) {
	path := filepath.Join(dir, partitionsFile)
	recorded, inFile := 0, false
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		inFile = true
		if recorded, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || recorded <= 0 {
			return 0, fmt.Errorf("partition count %s holds %q; restore it or move the data directory aside", path, b)
		}
	case !errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("read partition count: %w", err)
	default:
		for _, sub := range []string{"raft", "partitions"} {
			if _, err := os.Stat(filepath.Join(dir, sub)); err == nil {
				recorded = placement.DefaultPartitions
			}
		}
	}
	if recorded != 0 && flag != 0 && flag != recorded {
		return 0, fmt.Errorf("data directory %s was created with --partitions %d, not %d: a cluster's partition count is fixed when it is created. "+
			"Start this node with --partitions %d, or give it a new data directory to join or create a cluster with %d (if this one never joined a cluster, removing %s is enough)",
			dir, recorded, flag, recorded, flag, path)
	}
	if inFile {
		return recorded, nil
	}
	n := recorded
	if n == 0 {
		n = flag
	}
	if n == 0 {
		n = placement.DefaultPartitions
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("record partition count: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("record partition count: %w", err)
	}
	return n, nil
}

// waitReady logs once the node serves: joined, leader known, partitions
// ready.
func waitReady(ctx context.Context, rt *node.Runtime, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := rt.Ready(ctx); err == nil {
			info, _ := rt.Cluster(ctx)
			owned, alive := 0, 0
			for _, m := range info.Members {
				if m.Name == info.Node {
					owned = m.Partitions
				}
				if m.Status == "alive" {
					alive++
				}
			}
			log.Info("ready", "leader", info.Leader, "epoch", info.Epoch, "members_alive", alive,
				"partitions_owned", owned, "partitions", info.Partitions)
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

// requestWait maps the flag (0: no waiting) to rpc.ServerConfig's
// RequestWait (0: the default, negative: none).
func requestWait(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
