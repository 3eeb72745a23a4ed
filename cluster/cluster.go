package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dura-dev/dura/internal/logging"
	"github.com/dura-dev/dura/internal/peer"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/placement/membership"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/replication/shipping"
	"github.com/dura-dev/dura/rpc"
)

// Config configures this node's part in a cluster.
type Config struct {
	// Name is the node's unique, stable name.
	Name string
	// HTTP is the host:port other nodes and clients reach this node's API at.
	HTTP string
	// GossipBind and GossipAdvertise are the memberlist addresses.
	GossipBind, GossipAdvertise string
	// RaftBind and RaftAdvertise are the address of the peer port, which
	// carries Raft and the node-to-node HTTP API.
	RaftBind, RaftAdvertise string
	// TLS, if set, authenticates and encrypts the peer port both ways
	// (peer.FromSecrets, peer.FromFiles); nil leaves it plain.
	TLS *tls.Config
	// GossipKeys, if set, encrypt gossip (peer.GossipKeys).
	GossipKeys [][]byte
	// Dir holds the Raft log and snapshots.
	Dir string
	// Join lists gossip addresses of members to join; empty with
	// BootstrapExpect 0 bootstraps a one-node cluster.
	Join []string
	// BootstrapExpect forms the first cluster once this many nodes met.
	BootstrapExpect int
	// Ring fixes placement; it is recorded in the Raft state when the
	// cluster is created and the recorded one wins afterwards.
	Ring placement.RingConfig
	// Replication is the replica count of a new cluster, recorded with the
	// ring when it is created (the recorded one wins afterwards).
	Replication replication.Replication
	// DeadMemberTimeout is how long a member may stay dead before the
	// leader removes it, so its replica sets move to live members (only
	// with two copies or more, and only where an in-sync copy remains);
	// 0 means an hour.
	DeadMemberTimeout time.Duration
	// Registerer receives the cluster's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// AdminToken is sent on node-to-node calls, which a plain peer port
	// checks like client calls (the first, if comma-separated).
	AdminToken string
	// Logger receives the cluster's logs.
	Logger *slog.Logger
	// Timing is the cluster's clock (lease, Raft, gossip); the zero
	// value is DefaultTiming.
	Timing Timing
	// OnModules, if set, receives every deployed module whenever the
	// committed set changes (replication.RaftConfig.OnModules).
	OnModules func([]replication.Module)
}

// Timing is the cluster's clock: the leader lease, Raft's timeouts and
// gossip's failure detection. Use a preset.
type Timing struct {
	// Lease is how long a node keeps serving without hearing from a Raft
	// leader; a forced removal waits twice as long before reassigning.
	Lease  time.Duration
	Raft   replication.Timing
	Gossip membership.Timing
}

// DefaultTiming is for real networks: a 5 s lease.
func DefaultTiming() Timing {
	return Timing{Lease: 5 * time.Second, Raft: replication.DefaultTiming(), Gossip: membership.LAN}
}

// LoopbackTiming is for several nodes on one machine (tests): a 2 s
// lease, quick elections and failure detection.
func LoopbackTiming() Timing {
	return Timing{Lease: 2 * time.Second, Raft: replication.LoopbackTiming(), Gossip: membership.Loopback}
}

// Cluster joins a Runtime to the other nodes: gossip membership, the Raft
// group that commits members and partition placement, request routing
// with fencing, and partition handoff. All methods are safe to call
// concurrently.
type Cluster struct {
	cfg   Config
	rt    *node.Runtime
	log   *slog.Logger
	ml    *membership.Membership
	raft  *replication.RaftNode
	port  *peer.Port
	hc    *http.Client    // node-to-node calls, through peer ports
	fwd   *http.Client    // forwarded client requests, no overall timeout
	peers *rpc.PeerClient // node-to-node calls, answers decoded as the API's

	// changed is closed and replaced at every change that may let a
	// waiting request through (rpc.Router.Changed).
	changed atomic.Pointer[chan struct{}]

	peerSrv     *http.Server
	peerHandler atomic.Pointer[http.Handler]

	state atomic.Pointer[replication.ClusterState]
	kick  chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup

	incarnation string      // this data directory's identity (Start)
	lostLogged  atomic.Bool // the data-lost ERROR was logged

	pullWarns *logging.Limiter // a failed pull or seeding, a replica leaving in-sync sets: one WARN per peer per 30 s

	leaving    atomic.Bool // Leave was called: never rejoin
	caughtUp   atomic.Bool // applied what the leader had committed after start
	catchUp    uint64      // leader's commit index to reach (loop only)
	catchUpGen uint64      // contact lapses the catch-up under way covers (loop only)
	contact    contactGuard
	leaseCtx   atomic.Pointer[leaseCtx] // events' context, cancelled when the lease runs out
	lastRejoin time.Time                // loop only

	mu     sync.Mutex
	fired  chan replication.FiredAlarm // alarms that ran, to clear (clearFiredLoop)
	pulled map[int]uint64              // partition -> the move (its Since) this node completed

	// installing[p] is set while a pull of p runs here (at most one): the
	// fence then refuses p, so no event runs on a copy an adoption may
	// replace.
	installing []atomic.Bool
	timed      map[int]bool // partitions whose alarms are armed here (loop only)

	// Replication (replicate.go, seed.go); ship is nil without the node
	// log, which replication ships.
	ship        *shipping.Shipper
	shipStream  *shipping.StreamTransport
	shipConns   connSet // shipping streams this node serves
	recv        *shipping.Receiver
	streams     []stream      // per partition, as its primary
	inSync      inSyncBatcher // in-sync changes, many partitions a command
	seeding     []atomic.Bool // a seeding of the partition runs here
	seeds       atomic.Int32  // seedings running here
	replicaCopy []atomic.Bool // this node holds a replica's copy of it
	copiesFound bool          // replicaCopy was set from the disk (loop only)
	metrics     *metrics
	run         uint64               // names this process's record streams (Record.Run)
	deadSince   map[string]time.Time // leader: members dead in gossip since
	leaderSince time.Time            // when this node last became leader (loop only)
	removing    map[string]bool      // leader: dead members being removed (under mu)
	lastBalance time.Time            // leader: when primaries were last moved back (loop only)
	// What logChanges saw last (loop only).
	seenLeader  string
	seenMembers map[string]replication.MemberStatus
	owned       map[int]bool // partitions this node owned at the last look

	hooks atomic.Pointer[Hooks] // tests' fault injection (hooks.go)
}

// NewCluster attaches a cluster to rt (before rt.Start); no I/O.
func New(rt *node.Runtime, cfg Config) (*Cluster, error) {
	if cfg.Name == "" || cfg.HTTP == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("cluster config: name, HTTP address and dir are required")
	}
	if cfg.Timing.Lease == 0 {
		cfg.Timing = DefaultTiming()
	}
	if cfg.Ring.Partitions == 0 {
		cfg.Ring = placement.DefaultRingConfig()
	}
	if cfg.DeadMemberTimeout <= 0 {
		cfg.DeadMemberTimeout = time.Hour
	}
	if cfg.Ring.Partitions != rt.Partitions() {
		return nil, fmt.Errorf("cluster config: ring has %d partitions, the runtime %d", cfg.Ring.Partitions, rt.Partitions())
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := peer.Dialer{TLS: cfg.TLS}
	tr := rpc.NewPeerTransport(func(ctx context.Context, addr string) (net.Conn, error) {
		return dialer.Dial(ctx, addr, peer.KindHTTP)
	})
	c := &Cluster{
		cfg: cfg, rt: rt, log: log,
		hc:        &http.Client{Transport: tr, Timeout: 5 * time.Minute},
		fwd:       &http.Client{Transport: tr},
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		pulled:    map[int]uint64{},
		pullWarns: logging.NewLimiter(0, nil),
		fired:     make(chan replication.FiredAlarm, firedBatch),

		installing: make([]atomic.Bool, rt.Partitions()),
		owned:      map[int]bool{},
	}
	c.peers = rpc.NewPeerClient(c.hc, cfg.AdminToken)
	ch := make(chan struct{})
	c.changed.Store(&ch)
	c.leaseCtx.Store(newLeaseCtx())
	rt.AttachCluster(c, raftSchedule{c})
	c.inSync.c = c
	c.streams = make([]stream, rt.Partitions())
	c.seeding = make([]atomic.Bool, rt.Partitions())
	c.replicaCopy = make([]atomic.Bool, rt.Partitions())
	c.deadSince = map[string]time.Time{}
	c.removing = map[string]bool{}
	c.metrics = newMetrics(cfg.Registerer, c)
	c.run = rand.Uint64()
	if err := rt.SetReplicator(c); err == nil {
		c.shipStream = &shipping.StreamTransport{Dial: c.dialShip, Hello: shipHello(cfg.Name, cfg.AdminToken), Fallback: peerShipper{c}}
		c.ship = shipping.NewShipper(shipping.Config{Transport: hookedTransport{c, c.shipStream}, Logger: log})
		c.recv = shipping.NewReceiver(shipping.ReceiverConfig{Log: rt.LogReplicated, Apply: c.applyReceived, Check: c.checkSender})
	}
	return c, nil
}

func assignPartitions(members []string, p placement.RingConfig) ([]string, error) {
	return placement.Assign(members, p)
}

// Start opens Raft and gossip, joins or forms the cluster, and starts the
// loops that keep placement and data in step.
func (c *Cluster) Start(ctx context.Context) error {
	inc, err := loadIncarnation(c.rt.DataDir())
	if err != nil {
		return err
	}
	c.incarnation = inc
	port, err := peer.Listen(c.cfg.RaftBind, c.cfg.RaftAdvertise, c.cfg.TLS, c.log)
	if err != nil {
		return err
	}
	dialer := peer.Dialer{TLS: c.cfg.TLS}
	r, err := replication.NewRaftNode(replication.RaftConfig{
		NodeID: c.cfg.Name, Listener: port.RaftListener(), Dir: c.cfg.Dir,
		Dial: func(addr string, timeout time.Duration) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return dialer.Dial(ctx, addr, peer.KindRaft)
		},
		Assign: assignPartitions, Logger: c.log, Timing: c.cfg.Timing.Raft, OnChange: c.stateChanged, OnAlarm: c.onAlarm, OnModules: c.cfg.OnModules,
	})
	if err == nil {
		err = r.Open()
	}
	if err != nil {
		port.Close()
		return err
	}
	c.raft, c.port = r, port
	c.peerSrv = &http.Server{Handler: http.HandlerFunc(c.servePeer), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelDebug)}
	go c.peerSrv.Serve(port.HTTPListener())
	go c.serveShipping(port.ShipListener())
	c.state.CompareAndSwap(nil, r.State()) // stateChanged may have stored a newer one
	fail := func(err error) error {
		c.peerSrv.Close()
		r.Close()
		port.Close()
		return err
	}
	ml, err := membership.New(membership.Config{
		Name: c.cfg.Name, Bind: c.cfg.GossipBind, Advertise: c.cfg.GossipAdvertise, Keys: c.cfg.GossipKeys,
		Meta:     membership.Meta{HTTP: c.cfg.HTTP, Raft: r.Addr(), Incarnation: c.incarnation, Partitions: c.rt.Partitions()},
		OnChange: c.poke, Logger: c.log, Timing: c.cfg.Timing.Gossip,
	})
	if err == nil {
		err = ml.Start()
	}
	if err != nil {
		return fail(err)
	}
	c.ml = ml
	has, err := r.HasState()
	if err == nil && !has && len(c.cfg.Join) == 0 && c.cfg.BootstrapExpect <= 1 {
		err = r.Bootstrap()
	}
	if err != nil {
		ml.Close()
		return fail(err)
	}
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.loop(!has) }()
	go func() { defer c.wg.Done(); c.clearFiredLoop() }()
	go func() { defer c.wg.Done(); c.watchContact() }()
	return nil
}

// stateChanged takes each committed state as it is applied here, so
// fencing and routing never lag behind this node's Raft copy (the loop
// may be busy), then wakes the loop.
func (c *Cluster) stateChanged(st *replication.ClusterState) {
	c.state.Store(st)
	c.notify()
	c.poke()
}

// notify wakes the requests waiting for an owner (Changed).
func (c *Cluster) notify() {
	next := make(chan struct{})
	close(*c.changed.Swap(&next))
}

// Changed implements rpc.Router: closed at the next change of this
// node's committed cluster state (a handoff_done included) and when it
// has caught up.
func (c *Cluster) Changed() <-chan struct{} { return *c.changed.Load() }

func (c *Cluster) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// loop keeps this node in step with the committed state.
func (c *Cluster) loop(fresh bool) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	// A clean start of several nodes meets no one for a moment: warn
	// only once that lasts, or at once when the others answered with
	// another secret (gossip they cannot decrypt).
	started := time.Now()
	var warned, lastJoin time.Time
	for {
		// Joined means meeting another member: a --join list naming this
		// node too (the same list on every founder) is answered by this
		// node itself. A restarted node also asks the members its Raft
		// state knows, whatever --join says, and a node that lost sight
		// of every other member asks again.
		if targets := c.joinTargets(); len(targets) > 0 && !c.metOthers() && time.Since(lastJoin) > time.Second {
			lastJoin = time.Now()
			_, err := c.ml.Join(targets)
			if err == nil && !c.metOthers() {
				err = errors.New("only this node answered")
			}
			refused := err != nil && strings.Contains(err.Error(), "decrypt")
			switch {
			case err == nil:
			case time.Since(warned) > 30*time.Second && (refused || time.Since(started) > 30*time.Second):
				// A wrong secret shows here: say so now and then, not
				// every second.
				warned = time.Now()
				c.log.Warn("join: no member answered yet (still trying)", "join", targets, "err", err)
			default:
				c.log.Debug("join: no member answered yet", "err", err)
			}
		}
		if fresh && c.cfg.BootstrapExpect > 1 {
			fresh = !c.tryBootstrapExpect()
		}
		st := c.state.Load() // kept current by stateChanged
		if c.caughtUp.Load() && c.contact.observe(c.raft.LastContact(), c.lease()) {
			c.log.Warn("no contact with the Raft leader for longer than the lease: serving nothing until caught up with the cluster", "silence", c.contact.lastGap().Round(time.Millisecond))
			c.caughtUp.Store(false)
			c.catchUp = 0
		}
		c.checkCaughtUp(st)
		c.logChanges(st)
		if c.caughtUp.Load() {
			c.syncTimers(st)
		}
		if c.raft.IsLeader() {
			c.lead()
		} else {
			c.leaderSince = time.Time{}
		}
		c.rejoinIfGone()
		// Only the current state may move data: while a restarted node
		// replays its log, its state walks through history, and pulling,
		// dropping or archiving by a past state would set aside or
		// replace the copy the cluster now serves.
		if c.caughtUp.Load() {
			// One state for both: a seeding must never start on a state
			// newer than the one the handoffs were followed on.
			st := c.state.Load()
			c.followPlacement(st)
			c.followReplicas(st)
		}
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-tick.C:
		}
	}
}

// Close stops the loops, gossip (announcing a leave if leaving) and Raft.
func (c *Cluster) Close(graceful bool) error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.wg.Wait()
	if c.ship != nil {
		c.ship.Close()
		c.shipStream.Close()
	}
	var err error
	if c.ml != nil {
		if graceful {
			err = c.ml.Leave(2 * time.Second)
		} else {
			err = c.ml.Close()
		}
	}
	if c.raft != nil {
		err = errors.Join(err, c.raft.Close())
	}
	if c.port != nil {
		c.peerSrv.Close()
		c.shipConns.closeAll()
		err = errors.Join(err, c.port.Close())
	}
	return err
}

// logChanges writes the INFO lines an operator wants in a timeline: the
// leader changed, a member joined, left or was removed (loop only, once
// caught up: a replay walks through history).
func (c *Cluster) logChanges(st *replication.ClusterState) {
	if !c.caughtUp.Load() {
		return
	}
	if leader, _ := c.raft.Leader(); leader != "" && leader != c.seenLeader {
		c.log.Info("leader changed", "leader", leader, "previous", c.seenLeader, "epoch", st.Epoch)
		c.seenLeader = leader
	}
	now := make(map[string]replication.MemberStatus, len(st.Members))
	for name, m := range st.Members {
		now[name] = m.Status
		if c.seenMembers == nil {
			continue // the first look is no change
		}
		if before, ok := c.seenMembers[name]; !ok || before != m.Status {
			c.log.Info("member "+string(m.Status), "member", name, "was", string(before), "epoch", st.Epoch)
		}
	}
	c.seenMembers = now
}
