package server

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dura-dev/dura/internal/peer"
	"github.com/dura-dev/dura/jsrt"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// Errors of this package, for errors.Is.
var (
	// ErrUsage marks an error in the flags or environment (a command
	// line exits 2 on it). Errors of ParseFlags and Validate wrap it.
	ErrUsage = errors.New("usage")
	// ErrDataInUse: another process holds the data directory (Run checks
	// on Unix; the message names the holder's pid).
	ErrDataInUse = errors.New("data directory in use")
)

// MaxPartitions bounds --partitions: each partition costs every node a
// few dozen bytes of Raft state and a directory once it holds objects.
const MaxPartitions = 1 << 20

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// Config is everything a node takes from its flags and environment. Each
// field is the flag of the same name (--bootstrap-expect is
// BootstrapExpect); DefaultConfig gives a one-node cluster on loopback.
type Config struct {
	Name            string // node name, unique in the cluster
	Data            string // data directory
	HTTP            string // HTTP listen address
	Gossip          string // gossip listen address
	Raft            string // Raft listen address
	Advertise       string // address others reach this node at; empty: the bound one
	Join            string // comma-separated gossip addresses of members to join
	BootstrapExpect int    // form the first cluster once this many nodes have met
	// Partitions is the partition count of a new cluster, given to its
	// founding nodes and to every node that joins it (a node with another
	// count is refused). 0: the count of the data directory, else 271.
	// Choose at least 100 times the largest member count expected
	// (README, "Scale"); it cannot change after the cluster is created.
	Partitions       int
	Secret           string        // cluster secret (16+ bytes)
	SecretFile       string        // file holding the secret; further lines are accepted secrets
	AcceptSecrets    string        // comma-separated secrets also accepted, for rotation
	TLSCert          string        // PEM certificate for node-to-node mutual TLS
	TLSKey           string        // PEM private key of TLSCert
	TLSCA            string        // PEM CA certificates other nodes must chain to
	AdminToken       string        // bearer token(s) of /v1/ routes, comma-separated
	AdminTokenFile   string        // file holding the admin token
	APIToken         string        // bearer token(s) of /objects/ routes; open when empty
	APITokenFile     string        // file holding the API token
	MetricsAddr      string        // serve /metrics here instead of on HTTP
	Insecure         bool          // allow listening beyond loopback without a secret
	MaxObjectBytes   int64         // size limit of one object's database, bytes
	MaxOpenFiles     int           // files open object databases may hold (3 per object)
	MaxObjects       int           // live objects (open or parked) before LRU eviction
	AlarmConcurrency int           // alarm runs at once on this node
	IdleTimeout      time.Duration // close an object's database after this long idle
	ReleaseAfter     time.Duration // an idle object gives back its SQLite caches after this long
	StatementTimeout time.Duration // time limit of one SQL call
	JSCPULimit       time.Duration // JavaScript run time of one event; past it TIMEOUT and a reset
	ShutdownTimeout  time.Duration // how long a stop waits for in-flight events
	// RequestWait is how long a request waits for its object's owner
	// while the cluster forms, catches up, elects or hands off, before
	// 503; 0 answers at once.
	RequestWait time.Duration
	// NodeLog makes one group-committed log per node the durability of
	// every commit (node.Config.NodeLog); off, each commit fsyncs its own
	// object's WAL.
	NodeLog bool
	// PITRRetention keeps every commit restorable this long
	// (node.Config.PITRRetention); 0 turns it off.
	PITRRetention time.Duration
	// ReplicationFactor and MinInSync are a new cluster's replica count
	// and the in-sync copies a write needs (0: 2 from a factor of 2).
	ReplicationFactor int
	MinInSync         int
	// DeadMemberTimeout: a member dead longer is removed (replicated
	// clusters only).
	DeadMemberTimeout time.Duration
	LogLevel          string // debug, info, warn or error
	LogFormat         string // text or json
	DebugAddr         string // loopback address of Go pprof; off when empty

	// Output receives the logs and the "serving on" line; os.Stderr when
	// nil. Not a flag.
	Output io.Writer
}

// DefaultConfig is a one-node cluster: data in ./dura-data, HTTP on
// 127.0.0.1:8080, gossip 7946, Raft 7947, named after the host.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "dura-1"
	}
	return Config{
		Name:              host,
		Data:              "./dura-data",
		HTTP:              "127.0.0.1:8080",
		Gossip:            "127.0.0.1:7946",
		Raft:              "127.0.0.1:7947",
		MaxObjectBytes:    1 << 30,
		MaxOpenFiles:      3072,
		MaxObjects:        node.DefaultMaxObjects,
		AlarmConcurrency:  node.DefaultConfig("").AlarmConcurrency,
		IdleTimeout:       5 * time.Minute,
		ReleaseAfter:      node.DefaultConfig("").ReleaseAfter,
		StatementTimeout:  5 * time.Second,
		JSCPULimit:        jsrt.DefaultCPULimit,
		ShutdownTimeout:   30 * time.Second,
		RequestWait:       rpc.DefaultRequestWait,
		NodeLog:           true,
		PITRRetention:     720 * time.Hour,
		ReplicationFactor: 3,
		DeadMemberTimeout: time.Hour,
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// RegisterFlags defines one flag per field of c on fs, with c's current
// values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "name", c.Name, "node name, unique in the cluster")
	fs.StringVar(&c.Data, "data", c.Data, "data directory")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "HTTP listen address")
	fs.StringVar(&c.Gossip, "gossip", c.Gossip, "gossip listen address (cluster)")
	fs.StringVar(&c.Raft, "raft", c.Raft, "Raft listen address (cluster)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "address other nodes and clients reach this node at (default: the HTTP address)")
	fs.StringVar(&c.Join, "join", c.Join, "comma-separated gossip addresses of members to join (cluster)")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "form the first cluster once this many nodes have met (cluster)")
	fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partition count of a new cluster, fixed when it is created: give it to the founding nodes and to every node that joins (a prime, at least 100 times the most members expected; 0: the data directory's, else 271)")
	fs.IntVar(&c.ReplicationFactor, "replication-factor", c.ReplicationFactor, "copies of each partition in a new cluster, the primary included, fixed when it is created (capped by the member count)")
	fs.DurationVar(&c.DeadMemberTimeout, "dead-member-timeout", c.DeadMemberTimeout, "how long a member may stay dead before it is removed and its replica sets move to live members (two copies or more, and only where an in-sync copy remains)")
	fs.IntVar(&c.MinInSync, "min-insync", c.MinInSync, "in-sync copies a write needs in a new cluster; fewer and writes answer 503 (0: 2 when the replication factor is 2 or more, else 1)")
	fs.StringVar(&c.Secret, "secret", c.Secret, "cluster secret (16+ bytes): encrypts gossip and, without --tls-*, secures node-to-node traffic")
	fs.StringVar(&c.SecretFile, "secret-file", c.SecretFile, "file holding the cluster secret (first line); further lines are accepted secrets, as --accept-secrets")
	fs.StringVar(&c.AcceptSecrets, "accept-secrets", c.AcceptSecrets, "comma-separated secrets also accepted from other nodes, for rotating the secret")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate this node presents to other nodes (mutual TLS with --tls-key, --tls-ca)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "PEM CA certificates other nodes' certificates must chain to")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token required on /v1/ routes (comma-separated: each accepted, for rotation)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the admin token")
	fs.StringVar(&c.APIToken, "api-token", c.APIToken, "bearer token required on /objects/ routes (the admin token works there too; comma-separated like --admin-token); open when empty")
	fs.StringVar(&c.APITokenFile, "api-token-file", c.APITokenFile, "file holding the API token")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics on this address instead of the HTTP API's")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow listening beyond loopback without a cluster secret")
	fs.Int64Var(&c.MaxObjectBytes, "max-object-bytes", c.MaxObjectBytes, "size limit of one object's database, in bytes")
	fs.IntVar(&c.MaxOpenFiles, "max-open-files", c.MaxOpenFiles, "files open object databases may hold (3 per open object); past it the least recently used idle objects close their databases and stay live")
	fs.IntVar(&c.MaxObjects, "max-objects", c.MaxObjects, "live objects (in-memory state kept, database open or closed) this node keeps; past it the least recently used idle ones are evicted")
	fs.IntVar(&c.AlarmConcurrency, "alarm-concurrency", c.AlarmConcurrency, "alarm runs at once on this node")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close an object's database after this long without events")
	fs.DurationVar(&c.ReleaseAfter, "release-after", c.ReleaseAfter, "an object this long without events gives back its SQLite statements and page cache, staying open and active (0: never)")
	fs.DurationVar(&c.StatementTimeout, "statement-timeout", c.StatementTimeout, "time limit of one SQL call")
	fs.DurationVar(&c.JSCPULimit, "js-cpu-limit", c.JSCPULimit, "time a JavaScript class may run in one event; past it the event fails (504 TIMEOUT), rolls back and the object is reset")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long SIGTERM waits for in-flight events")
	fs.BoolVar(&c.NodeLog, "node-log", c.NodeLog, "make one group-committed log in <data>/log the durability of every commit (one fsync for many events); false: each commit fsyncs its own object's WAL")
	fs.DurationVar(&c.PITRRetention, "pitr-retention", c.PITRRetention, "keep every commit of every object restorable this long (bookmarks, restore); 0 turns it off, and so does --node-log=false (the history is archived from the log)")
	fs.DurationVar(&c.RequestWait, "request-wait", c.RequestWait, "how long a request waits for its object's owner while the cluster forms, catches up, elects or hands off, before 503 (never past the request's deadline; 0: answer at once)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve Go pprof on this (loopback) address; off when empty")
}

// ParseFlags reads a Config from DefaultConfig, then DURA_<NAME> variables
// (through getenv), then args, which win. It reads the *-file flags and
// validates the result. synopsis names the command in --help ("dura serve
// [flags]"), printed to output. --help returns flag.ErrHelp; every other
// error wraps ErrUsage.
func ParseFlags(synopsis string, args []string, getenv func(string) string, output io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet(synopsis, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: %s\n\nFlags (each also DURA_<NAME> in the environment):\n", synopsis)
		fs.PrintDefaults()
	}
	c.RegisterFlags(fs)
	if err := ApplyEnv(fs, getenv); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return c, usageErr("unexpected arguments %q", fs.Args())
	}
	if err := c.readFiles(); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// ApplyEnv sets each flag of fs whose DURA_<NAME> variable (upper case,
// dashes as underscores) is non-empty. Call it before fs.Parse so the
// command line wins.
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := "DURA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageErr("%s=%q: %v", key, v, e)
			}
		}
	})
	return err
}

// readFiles moves the contents of the *-file flags into their values and
// clears them, so reading twice changes nothing.
func (c *Config) readFiles() error {
	for _, f := range []struct {
		flag string
		file *string
		to   *string
	}{{"--secret-file", &c.SecretFile, &c.Secret}, {"--admin-token-file", &c.AdminTokenFile, &c.AdminToken}, {"--api-token-file", &c.APITokenFile, &c.APIToken}} {
		if *f.file == "" {
			continue
		}
		b, err := os.ReadFile(*f.file)
		if err != nil {
			return usageErr("%s: %v", f.flag, err)
		}
		lines := strings.Fields(string(b))
		if len(lines) == 0 {
			return usageErr("%s: %s is empty", f.flag, *f.file)
		}
		*f.to = lines[0]
		if f.to == &c.Secret && len(lines) > 1 {
			c.AcceptSecrets = strings.Join(append(lines[1:], c.AcceptSecrets), ",")
		}
		*f.file = ""
	}
	return nil
}

// Validate checks the flags against each other: secrets, TLS files given
// together, listen addresses beyond loopback only with a secret (or
// Insecure), log settings. It reads no file.
func (c *Config) Validate() error {
	if c.Secret == "" && c.AcceptSecrets != "" {
		return usageErr("--accept-secrets needs --secret")
	}
	if c.Secret != "" {
		if err := peer.CheckSecrets(c.secrets()); err != nil {
			return usageErr("--secret: %v", err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") || (c.TLSCert == "") != (c.TLSCA == "") {
		return usageErr("--tls-cert, --tls-key and --tls-ca go together")
	}
	if c.APIToken != "" && c.APIToken == c.AdminToken {
		return usageErr("--api-token must differ from --admin-token")
	}
	if c.JSCPULimit <= 0 {
		return usageErr("--js-cpu-limit must be positive")
	}
	if c.BootstrapExpect < 0 {
		return usageErr("--bootstrap-expect must be 0 or more")
	}
	if c.PITRRetention < 0 {
		return usageErr("--pitr-retention must be 0 (off) or positive")
	}
	if c.DeadMemberTimeout <= 0 {
		return usageErr("--dead-member-timeout must be positive")
	}
	if c.ReplicationFactor < 1 || c.MinInSync < 0 || c.MinInSync > c.ReplicationFactor {
		return usageErr("--replication-factor must be 1 or more and --min-insync between 0 and it")
	}
	if c.Partitions < 0 || c.Partitions > MaxPartitions {
		return usageErr("--partitions must be between 1 and %d (0: the data directory's count, else 271)", MaxPartitions)
	}
	addrs := []struct{ flag, addr string }{{"--http", c.HTTP}, {"--gossip", c.Gossip}, {"--raft", c.Raft}}
	if c.MetricsAddr != "" {
		addrs = append(addrs, struct{ flag, addr string }{"--metrics-addr", c.MetricsAddr})
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return usageErr("%s %q: %v", a.flag, a.addr, err)
		}
		if !isLoopback(host) && c.Secret == "" && !c.Insecure {
			return usageErr("%s %s listens beyond loopback without a cluster secret; set --secret (or DURA_SECRET, --secret-file), or pass --insecure to accept the risk", a.flag, a.addr)
		}
		if (host == "" || host == "0.0.0.0" || host == "::") && c.Advertise == "" {
			return usageErr("%s %s listens on every interface: give --advertise with the address other nodes reach this one at", a.flag, a.addr)
		}
	}
	if c.DebugAddr != "" {
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if err != nil || !isLoopback(host) {
			return usageErr("--debug-addr %q must be a loopback host:port", c.DebugAddr)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return usageErr("--log-level: %v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return usageErr("--log-format must be text or json")
	}
	return nil
}

// secrets lists the cluster secret first, then the accepted ones.
func (c *Config) secrets() []string {
	all := []string{c.Secret}
	for _, s := range strings.Split(c.AcceptSecrets, ",") {
		if s = strings.TrimSpace(s); s != "" {
			all = append(all, s)
		}
	}
	return all
}

// peerSecurity is the TLS configuration of the peer port and the gossip
// keys: certificates when given, else derived from the secret; nil (plain)
// without either.
func (c *Config) peerSecurity() (*tls.Config, [][]byte, error) {
	if c.Secret == "" && c.TLSCert == "" {
		return nil, nil, nil
	}
	var keys [][]byte
	var err error
	if c.Secret != "" {
		if keys, err = peer.GossipKeys(c.secrets()); err != nil {
			return nil, nil, err
		}
	}
	var conf *tls.Config
	if c.TLSCert != "" {
		conf, err = peer.FromFiles(c.TLSCert, c.TLSKey, c.TLSCA)
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

// minInSync is --min-insync with its default: 2 once there are 2 copies.
func (c *Config) minInSync() int {
	if c.MinInSync > 0 {
		return c.MinInSync
	}
	return min(c.ReplicationFactor, 2)
}
