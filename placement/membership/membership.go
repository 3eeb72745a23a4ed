package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dura-dev/dura/internal/logging"
	"github.com/dura-dev/dura/placement"
)

// Meta is what a node tells the others about itself by gossip.
type Meta struct {
	HTTP string `json:"http"`
	Raft string `json:"raft"`
	// Leaving is set just before a graceful leave, so the others can tell
	// a departure from a failure (memberlist's events do not say which).
	Leaving bool `json:"leaving,omitempty"`
	// Incarnation identifies the node's data directory (see
	// replication.Member).
	Incarnation string `json:"incarnation,omitempty"`
	// Partitions is the partition count the node runs with; 0 (versions
	// before it) means placement.DefaultPartitions, the only count they had.
	// Gossip refuses members of another count (Membership).
	Partitions int `json:"partitions,omitempty"`
}

// partitions is the count m's node runs with.
func (m Meta) partitions() int {
	if m.Partitions == 0 {
		return placement.DefaultPartitions
	}
	return m.Partitions
}

// ErrPartitionsDiffer is the refusal of a member whose partition count is
// not this node's: nodes of one cluster must all map objects to the same
// partitions.
var ErrPartitionsDiffer = errors.New("partition counts differ")

// Peer is a node as gossip sees it. Gossip only detects failures; who
// owns what is decided by the committed (Raft) state.
type Peer struct {
	Name   string `json:"name"`
	Gossip string `json:"gossip"`
	Meta   Meta   `json:"meta"`
	State  string `json:"state"` // alive, dead or left
}

// Config configures gossip membership.
type Config struct {
	// Name is this node's unique name.
	Name string
	// Bind is the gossip listen address (TCP and UDP); port 0 picks one.
	Bind string
	// Advertise is the address others reach this node at; empty means the
	// bound one.
	Advertise string
	// Meta is gossiped to the other members.
	Meta Meta
	// Keys, if set (each 16, 24 or 32 bytes), encrypt and authenticate
	// gossip: messages go out under Keys[0] and come in under any of
	// them, so a key can be rotated in three rolling steps.
	Keys [][]byte
	// OnChange is called (from gossip's goroutines, not concurrently with
	// itself) after a member joined, left, failed or changed its meta.
	OnChange func()
	// Logger receives memberlist's logs; nil discards them.
	Logger *slog.Logger
	// Timing is how fast failures are detected: LAN (the default, the
	// zero value) or Loopback.
	Timing Timing
}

// Membership is this node's view of the cluster's members, kept by
// memberlist gossip. It refuses to meet a node with another partition
// count (Meta.Partitions): joining with one fails with
// ErrPartitionsDiffer's message, so such a node never becomes a member.
// All methods are safe to call concurrently.
type Membership struct {
	cfg Config
	ml  *memberlist.Memberlist
	// deadAfter bounds how long failure detection takes to declare a
	// stopped node dead.
	deadAfter time.Duration

	mu    sync.Mutex
	peers map[string]Peer
}

// New checks cfg; it does no I/O until Start.
func New(cfg Config) (*Membership, error) {
	if cfg.Name == "" || cfg.Bind == "" {
		return nil, fmt.Errorf("membership config: name and bind address are required")
	}
	return &Membership{cfg: cfg, peers: map[string]Peer{}}, nil
}

// Start opens the gossip listeners.
func (m *Membership) Start() error {
	host, port, err := splitHostPort(m.cfg.Bind)
	if err != nil {
		return fmt.Errorf("gossip bind %q: %w", m.cfg.Bind, err)
	}
	c := m.cfg.Timing.config()
	c.Name = m.cfg.Name
	// A member that comes back at a new address (a container or pod
	// restarted with a new IP) may reclaim its name this soon after it
	// was declared dead, not only once gossip forgets it.
	c.DeadNodeReclaimTime = 10 * time.Second
	c.BindAddr, c.BindPort = host, port
	c.AdvertisePort = port
	if m.cfg.Advertise != "" {
		ah, ap, err := splitHostPort(m.cfg.Advertise)
		if err != nil {
			return fmt.Errorf("gossip advertise %q: %w", m.cfg.Advertise, err)
		}
		if net.ParseIP(ah) == nil {
			// memberlist wants an IP; a name (a container's service
			// name) is resolved once here.
			ips, err := net.LookupIP(ah)
			if err != nil || len(ips) == 0 {
				return fmt.Errorf("gossip advertise %q: %v", m.cfg.Advertise, err)
			}
			ah = ips[0].String()
		}
		c.AdvertiseAddr, c.AdvertisePort = ah, ap
	}
	if len(m.cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(m.cfg.Keys, m.cfg.Keys[0])
		if err != nil {
			return fmt.Errorf("gossip keyring: %w", err)
		}
		c.Keyring = kr
		c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	}
	c.Delegate = delegate{m}
	c.Events = events{m}
	c.Merge = guard{m.cfg.Meta.partitions()}
	c.Alive = guard{m.cfg.Meta.partitions()}
	c.Logger = logging.Memberlist(m.cfg.Logger)
	ml, err := memberlist.Create(c)
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	m.ml = ml
	// A suspect is declared dead after SuspicionMult probe intervals
	// (scaled up to SuspicionMaxTimeoutMult while few others confirm).
	m.deadAfter = c.ProbeInterval*time.Duration(c.SuspicionMult*c.SuspicionMaxTimeoutMult) + c.ProbeTimeout
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

// DeadAfter bounds how long after a node stops gossip declares it dead.
func (m *Membership) DeadAfter() time.Duration { return m.deadAfter }

// Timing names a preset of memberlist's failure detection.
type Timing int

const (
	// LAN is memberlist's DefaultLANConfig: a dead node is noticed in
	// seconds without false alarms on a real network.
	LAN Timing = iota
	// Loopback is for several nodes on one machine (tests):
	// DefaultLocalConfig, probing five times as often.
	Loopback
)

func (t Timing) config() *memberlist.Config {
	if t != Loopback {
		return memberlist.DefaultLANConfig()
	}
	c := memberlist.DefaultLocalConfig()
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.SuspicionMult = 2
	return c
}

// Addr is this node's gossip address.
func (m *Membership) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join contacts the given members' gossip addresses; it succeeds if any
// answered.
func (m *Membership) Join(addrs []string) (int, error) {
	return m.ml.Join(addrs)
}

// Peers lists every member gossip has seen, this node included, by name.
func (m *Membership) Peers() []Peer {
	m.mu.Lock()
	out := make([]Peer, 0, len(m.peers))
	for _, p := range m.peers {
		out = append(out, p)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Leave tells the others this node is going, then stops gossip.
func (m *Membership) Leave(timeout time.Duration) error {
	m.mu.Lock()
	m.cfg.Meta.Leaving = true
	m.mu.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		return err
	}
	if err := m.ml.Leave(timeout); err != nil {
		return err
	}
	return m.ml.Shutdown()
}

// Close stops gossip without a goodbye (the others will see a failure).
func (m *Membership) Close() error { return m.ml.Shutdown() }

// note records an event about n; gone is true for NotifyLeave.
func (m *Membership) note(n *memberlist.Node, gone bool) {
	var meta Meta
	_ = json.Unmarshal(n.Meta, &meta)
	state := "alive"
	if gone {
		state = "dead"
		if meta.Leaving {
			state = "left"
		}
	}
	m.mu.Lock()
	m.peers[n.Name] = Peer{Name: n.Name, Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), Meta: meta, State: state}
	m.mu.Unlock()
	if m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
}

type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	b, _ := json.Marshal(d.m.cfg.Meta)
	d.m.mu.Unlock()
	if len(b) > limit {
		return nil
	}
	return b
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// guard keeps nodes of another partition count out: Merge refuses a
// join (both sides), Alive ignores news of such a node from elsewhere.
type guard struct{ partitions int }

func (g guard) check(n *memberlist.Node) error {
	var meta Meta
	if len(n.Meta) == 0 || json.Unmarshal(n.Meta, &meta) != nil {
		return nil // not a Dura node's meta: nothing to compare
	}
	if p := meta.partitions(); p != g.partitions {
		return fmt.Errorf("%w: member %s runs with %d partitions, this node with %d; every node of a cluster must use the count the cluster was created with: start a node that joins it with --partitions %d (and a data directory of its own)",
			ErrPartitionsDiffer, n.Name, p, g.partitions, p)
	}
	return nil
}

func (g guard) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := g.check(n); err != nil {
			return err
		}
	}
	return nil
}

func (g guard) NotifyAlive(n *memberlist.Node) error { return g.check(n) }

type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.note(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.m.note(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.note(n, false) }
