package cluster

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/peer"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/placement/membership"
	"github.com/dura-dev/dura/replication"
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
	// AdminToken is sent on node-to-node calls, which a plain peer port
	// checks like client calls (the first, if comma-separated).
	AdminToken string
	// Logger receives the cluster's logs.
	Logger *slog.Logger
	// Fast shortens gossip and Raft timeouts, for tests on loopback.
	Fast bool
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

	leaving    atomic.Bool // Leave was called: never rejoin
	caughtUp   atomic.Bool // applied what the leader had committed after start
	catchUp    uint64      // leader's commit index to reach (loop only)
	lastRejoin time.Time   // loop only

	mu     sync.Mutex
	fired  chan replication.FiredAlarm // alarms that ran, to clear (clearFiredLoop)
	pulled map[int]uint64              // partition -> the move (its Since) this node completed

	// installing[p] is set while a pull of p runs here (at most one): the
	// fence then refuses p, so no event runs on a copy an adoption may
	// replace.
	installing []atomic.Bool
	timed      map[int]bool // partitions whose alarms are armed here (loop only)
	owned      map[int]bool // partitions this node owned at the last look
}

// NewCluster attaches a cluster to rt (before rt.Start); no I/O.
func New(rt *node.Runtime, cfg Config) (*Cluster, error) {
	if cfg.Name == "" || cfg.HTTP == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("cluster config: name, HTTP address and dir are required")
	}
	if cfg.Ring.Partitions == 0 {
		cfg.Ring = placement.DefaultRingConfig()
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
		hc:     &http.Client{Transport: tr, Timeout: 5 * time.Minute},
		fwd:    &http.Client{Transport: tr},
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		pulled: map[int]uint64{},
		fired:  make(chan replication.FiredAlarm, firedBatch),

		installing: make([]atomic.Bool, rt.Partitions()),
		owned:      map[int]bool{},
	}
	c.peers = rpc.NewPeerClient(c.hc, cfg.AdminToken)
	ch := make(chan struct{})
	c.changed.Store(&ch)
	rt.AttachCluster(c, raftSchedule{c})
	return c, nil
}

// raftSchedule is the alarm schedule of a cluster: committed through Raft
// (by way of the leader), read from this node's copy.
type raftSchedule struct{ c *Cluster }

// PutAlarm returns once the change is committed (on a quorum); this
// node's copy may apply it a moment later, which Runtime.getAlarm covers.
func (s raftSchedule) PutAlarm(a replication.Alarm) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.c.Apply(ctx, replication.Command{Kind: replication.CmdPutAlarm, Alarm: &a})
}

// DeleteAlarm returns once the deletion is committed.
func (s raftSchedule) DeleteAlarm(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.c.Apply(ctx, replication.Command{Kind: replication.CmdDeleteAlarm, Name: id})
}

// ClearFired queues the clearing of an alarm that ran for the next batch.
func (s raftSchedule) ClearFired(id string, at time.Time) {
	select {
	case s.c.fired <- replication.FiredAlarm{ObjectID: id, At: at}:
	case <-s.c.stop:
	}
}

// Fired alarms are cleared through Raft in batches of up to
// firedBatch, each sent firedLinger after its first entry at the latest.
const (
	firedBatch  = 512
	firedLinger = 10 * time.Millisecond
)

// clearFiredLoop commits the clearing of alarms that ran, many per Raft
// entry. A batch that cannot be committed is retried; at stop, what is
// left gets one last try (failing that, those alarms run again after a
// restart: at least once).
func (c *Cluster) clearFiredLoop() {
	var batch []replication.FiredAlarm
	for {
		select {
		case f := <-c.fired:
			batch = append(batch, f)
		case <-c.stop:
			c.lastFired(batch)
			return
		}
		linger := time.After(firedLinger)
	fill:
		for len(batch) < firedBatch {
			select {
			case f := <-c.fired:
				batch = append(batch, f)
			case <-linger:
				break fill
			case <-c.stop:
				break fill
			}
		}
		for {
			err := c.clearFired(batch, 10*time.Second)
			if err == nil {
				batch = batch[:0]
				break
			}
			c.log.Warn("cannot clear alarms that ran; retrying", "alarms", len(batch), "err", err)
			select {
			case <-c.stop:
				c.lastFired(batch)
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// lastFired tries once, at stop, to clear batch and what is still queued.
func (c *Cluster) lastFired(batch []replication.FiredAlarm) {
	for len(c.fired) > 0 {
		batch = append(batch, <-c.fired)
	}
	if len(batch) == 0 {
		return
	}
	if err := c.clearFired(batch, 2*time.Second); err != nil {
		c.log.Warn("alarms that ran stay scheduled and will run again", "alarms", len(batch), "err", err)
	}
}

// clearFired commits one batch of alarms that ran.
func (c *Cluster) clearFired(batch []replication.FiredAlarm, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Apply(ctx, replication.Command{Kind: replication.CmdDeleteAlarm, Fired: batch})
}

func (s raftSchedule) GetAlarm(id string) (replication.Alarm, bool, error) {
	if s.c.raft == nil {
		return replication.Alarm{}, false, nil
	}
	a, ok := s.c.raft.Alarm(id)
	return a, ok, nil
}

func (s raftSchedule) Alarms() ([]replication.Alarm, error) {
	if s.c.raft == nil {
		return nil, nil // not started: timers follow ownership once it is
	}
	return s.c.raft.Alarms(nil), nil
}

// syncTimers arms exactly the alarms of the partitions this node owns
// and serves, whenever that set changes (join, leave, handoff, restart).
func (c *Cluster) syncTimers(st *replication.ClusterState) {
	mine := make(map[int]bool)
	for p, part := range st.Partitions {
		if part.Owner == c.cfg.Name && part.Ready() {
			mine[p] = true
		}
	}
	if sameSet(mine, c.timed) {
		return
	}
	c.timed = mine
	for _, a := range c.raft.Alarms(nil) {
		if mine[a.Partition] {
			c.rt.ArmAlarm(a)
		} else {
			c.rt.DisarmAlarm(a.ObjectID)
		}
	}
}

func sameSet(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func assignPartitions(members []string, p replication.RingParams) ([]string, error) {
	return placement.Assign(members, placement.RingConfig(p))
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
		Assign: assignPartitions, Logger: c.log, Fast: c.cfg.Fast, OnChange: c.stateChanged, OnAlarm: c.onAlarm,
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
		OnChange: c.poke, Logger: c.log, Fast: c.cfg.Fast,
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
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.loop(!has) }()
	go func() { defer c.wg.Done(); c.clearFiredLoop() }()
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
// node's cluster state, catching up or installing.
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
			switch {
			case err == nil:
			case time.Since(warned) > 30*time.Second:
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
		c.checkCaughtUp(st)
		if c.caughtUp.Load() {
			c.syncTimers(st)
		}
		if c.raft.IsLeader() {
			c.lead()
		}
		c.rejoinIfGone()
		// Only the current state may move data: while a restarted node
		// replays its log, its state walks through history, and pulling,
		// dropping or archiving by a past state would set aside or
		// replace the copy the cluster now serves.
		if c.caughtUp.Load() {
			c.followPlacement()
		}
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-tick.C:
		}
	}
}

// checkCaughtUp lets this node serve once it applied everything the
// leader had committed when asked: after a restart its state is only its
// last snapshot and log until then, and might give it partitions it lost.
func (c *Cluster) checkCaughtUp(st *replication.ClusterState) {
	if c.caughtUp.Load() {
		return
	}
	if c.raft.IsLeader() {
		// A new leader holds every committed entry but knows them
		// committed, and applies them, only after committing one of its
		// own term: the barrier waits for that.
		if c.raft.Barrier(2*time.Second) == nil {
			c.setCaughtUp()
		}
		return
	}
	if c.catchUp == 0 {
		leaderID, _ := c.raft.Leader()
		m := st.Members[leaderID]
		if m == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		b, err := c.peers.Call(ctx, rpc.Peer{Name: m.Name, Addr: m.Raft}, http.MethodGet, "/v1/internal/commit", nil)
		var resp struct{ Index uint64 }
		if err != nil || json.Unmarshal(b, &resp) != nil || resp.Index == 0 {
			return
		}
		c.catchUp = resp.Index
	}
	if c.raft.AppliedIndex() >= c.catchUp {
		c.setCaughtUp()
	}
}

// setCaughtUp lets this node serve (loop only).
func (c *Cluster) setCaughtUp() {
	c.caughtUp.Store(true)
	c.timed = nil // arm every alarm of this node from now on
	c.notify()
}

// CommitIndex answers a restarted node asking how far to catch up.
func (c *Cluster) CommitIndex(ctx context.Context) (uint64, error) {
	if !c.raft.IsLeader() {
		return 0, fmt.Errorf("%w: not the leader", apierr.ErrOwnerUnavailable)
	}
	// After the barrier everything committed is applied here, so this is
	// an index that covers every write acknowledged so far.
	if err := c.raft.Barrier(5 * time.Second); err != nil {
		return 0, fmt.Errorf("%w: %v", apierr.ErrOwnerUnavailable, err)
	}
	return c.raft.AppliedIndex(), nil
}

// rejoinIfGone asks to be an active member again when this node is not
// one in its view (it left or was removed and was restarted, or it is
// new). A node outside the Raft group hears from no leader, so the request
// goes to any live member by gossip, which passes it to the leader.
func (c *Cluster) rejoinIfGone() {
	st := c.state.Load()
	if c.leaving.Load() || time.Since(c.lastRejoin) < 2*time.Second {
		return
	}
	if m := st.Members[c.cfg.Name]; m != nil && m.Status == replication.Active && (m.Incarnation == c.incarnation || m.DataLost) {
		return
	}
	if st.Epoch == 0 && len(c.cfg.Join) == 0 {
		return // bootstrapping: the leader admits itself
	}
	c.lastRejoin = time.Now()
	me := replication.Member{Name: c.cfg.Name, HTTP: c.cfg.HTTP, Raft: c.raft.Addr(), Gossip: c.ml.Addr(), Status: replication.Active, Incarnation: c.incarnation}
	b, _ := json.Marshal(replication.Command{Kind: replication.CmdJoin, Member: me})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range c.ml.Peers() {
		if p.Name == c.cfg.Name || p.State != "alive" || p.Meta.Raft == "" {
			continue
		}
		_, err := c.peers.Call(ctx, rpc.Peer{Name: p.Name, Addr: p.Meta.Raft}, http.MethodPost, "/v1/internal/apply", b)
		if err == nil {
			return
		}
		if errors.Is(err, apierr.ErrConflict) {
			// Refused (a full ring): say why, and ask again in a minute.
			c.log.Error("the cluster refused this node's join", "err", err)
			c.lastRejoin = time.Now().Add(time.Minute)
			return
		}
	}
}

// tryBootstrapExpect forms the first cluster once BootstrapExpect nodes
// are alive in gossip; every founder proposes the same voter list.
func (c *Cluster) tryBootstrapExpect() bool {
	var servers []replication.Server
	for _, p := range c.ml.Peers() {
		if p.State == "alive" && p.Meta.Raft != "" {
			servers = append(servers, replication.Server{ID: p.Name, Address: p.Meta.Raft, Voter: true})
		}
	}
	// Only with exactly the expected founders, this node among them: with
	// more in view, founders could pick different sets and form two
	// clusters; a node that sees an existing leader joins it instead.
	if len(servers) != c.cfg.BootstrapExpect {
		return false
	}
	if id, _ := c.raft.Leader(); id != "" {
		return true
	}
	self := false
	for _, sv := range servers {
		self = self || sv.ID == c.cfg.Name
	}
	if !self {
		return false
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	if err := c.raft.BootstrapWith(servers); err != nil {
		c.log.Warn("bootstrap failed", "err", err)
		return false
	}
	return true
}

// lead does the leader's share: create the ring, admit members seen by
// gossip, and keep 3 voters (5 from 5 members up) in the Raft group.
func (c *Cluster) lead() {
	st := c.raft.State()
	if st.Epoch == 0 {
		c.applyLocal(replication.Command{Kind: replication.CmdBootstrap, Ring: replication.RingParams(c.cfg.Ring)})
		st = c.raft.State()
	}
	for _, p := range c.ml.Peers() {
		if p.State != "alive" || p.Meta.Leaving || p.Meta.HTTP == "" {
			continue
		}
		m := st.Members[p.Name]
		want := replication.Member{Name: p.Name, HTTP: p.Meta.HTTP, Raft: p.Meta.Raft, Gossip: p.Gossip, Status: replication.Active, Incarnation: p.Meta.Incarnation}
		// Admit newcomers and record changed addresses (and lost data
		// directories) of active members. A member that left or was
		// removed comes back only by asking (rejoin), so a node that just
		// finished leaving is not re-admitted while its gossip is still up.
		if m == nil || m.Status == replication.Active && *m != replication.Rejoined(m, want) {
			c.applyLocal(replication.Command{Kind: replication.CmdJoin, Member: want})
		}
	}
	c.manageVoters(c.raft.State())
}

func (c *Cluster) manageVoters(st *replication.ClusterState) {
	servers, err := c.raft.Servers()
	if err != nil {
		return
	}
	inRaft := map[string]replication.Server{}
	voters := 0
	for _, s := range servers {
		inRaft[s.ID] = s
		if s.Voter {
			voters++
		}
	}
	active := st.ActiveMembers()
	want := 3
	if len(active) >= 5 {
		want = 5
	}
	for _, name := range active {
		m := st.Members[name]
		s, ok := inRaft[name]
		switch {
		case !ok:
			voter := voters < want
			if err := c.raft.AddServer(name, m.Raft, voter); err == nil && voter {
				voters++
			}
		case !s.Voter && voters < want:
			if err := c.raft.AddServer(name, m.Raft, true); err == nil {
				voters++
			}
		}
	}
	for id := range inRaft {
		if m := st.Members[id]; m != nil && (m.Status == replication.Left || m.Status == replication.Removed) && id != c.cfg.Name {
			c.raft.RemoveServer(id)
		}
	}
}

func (c *Cluster) applyLocal(cmd replication.Command) {
	if err := c.raft.Apply(cmd, 5*time.Second); err != nil {
		c.log.Debug("cluster command refused", "kind", cmd.Kind, "err", err)
	}
}

// Apply commits a command through the leader, wherever it is.
func (c *Cluster) Apply(ctx context.Context, cmd replication.Command) error {
	if c.raft.IsLeader() {
		return c.raft.Apply(cmd, 5*time.Second)
	}
	st := c.state.Load()
	leaderID, _ := c.raft.Leader()
	m := st.Members[leaderID]
	if m == nil {
		// Outside the Raft group (a node that left and came back) this
		// node hears from no leader: any active member passes it on.
		for _, name := range st.ActiveMembers() {
			if name != c.cfg.Name {
				m = st.Members[name]
				break
			}
		}
	}
	if m == nil {
		return fmt.Errorf("%w: no known leader", apierr.ErrOwnerUnavailable)
	}
	b, _ := json.Marshal(cmd)
	_, err := c.peers.Call(ctx, rpc.Peer{Name: m.Name, Addr: m.Raft}, http.MethodPost, "/v1/internal/apply", b)
	return err
}

// ApplyCommand commits a command forwarded by another node.
func (c *Cluster) ApplyCommand(ctx context.Context, body []byte) error {
	var cmd replication.Command
	if err := json.Unmarshal(body, &cmd); err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	err := c.raft.Apply(cmd, 5*time.Second)
	if errors.Is(err, replication.ErrNotLeader) {
		// Pass it on once, to the leader this node knows.
		leaderID, _ := c.raft.Leader()
		m := c.state.Load().Members[leaderID]
		if m == nil || cmd.Hops > 0 {
			return fmt.Errorf("%w: not the leader", apierr.ErrOwnerUnavailable)
		}
		cmd.Hops++
		b, _ := json.Marshal(cmd)
		_, err = c.peers.Call(ctx, rpc.Peer{Name: m.Name, Addr: m.Raft}, http.MethodPost, "/v1/internal/apply", b)
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrConflict, err)
	}
	return nil
}

// lease is how long a node keeps serving without hearing from a Raft
// leader; a forced removal waits twice as long before reassigning.
func (c *Cluster) lease() time.Duration {
	if c.cfg.Fast {
		return 2 * time.Second
	}
	return 5 * time.Second
}

// Fence lets an event run only on a partition this node owns, ready, and
// only while this node is in touch with the Raft majority: a node cut off
// for longer than the lease stops serving, so a forced removal (which
// waits the lease out) never leaves two nodes serving one partition.
func (c *Cluster) Fence(p int) error {
	return apierr.NotExecuted(c.fenceErr(p))
}

func (c *Cluster) fenceErr(p int) error {
	if since := time.Since(c.raft.LastContact()); since > c.lease() {
		return fmt.Errorf("%w: node %s has had no contact with the Raft leader for %s", apierr.ErrOwnerUnavailable, c.cfg.Name, since.Round(time.Millisecond))
	}
	if !c.caughtUp.Load() {
		return fmt.Errorf("%w: node %s is catching up with the cluster", apierr.ErrOwnerUnavailable, c.cfg.Name)
	}
	st := c.state.Load()
	if st == nil || p >= len(st.Partitions) {
		return fmt.Errorf("%w: cluster not formed yet", apierr.ErrOwnerUnavailable)
	}
	part := st.Partitions[p]
	if part.Owner != c.cfg.Name || !part.Ready() {
		return fmt.Errorf("%w: partition %d is not served by node %s now (owner %q, moving to %q)", apierr.ErrOwnerUnavailable, p, c.cfg.Name, part.Owner, part.Target)
	}
	if err := c.dataMissing(st); err != nil {
		return err
	}
	if c.installing[p].Load() {
		return fmt.Errorf("%w: partition %d is being installed on node %s", apierr.ErrOwnerUnavailable, p, c.cfg.Name)
	}
	return nil
}

// Route implements rpc.Router. Its refusals did not run the request
// (apierr.NotExecuted), so the entry node may wait and try again.
func (c *Cluster) Route(class, name string) (rpc.Peer, bool, error) {
	if placement.ValidateClass(class) != nil || placement.ValidateName(name) != nil {
		return rpc.Peer{}, true, nil // let the local handler answer the bad request
	}
	st := c.state.Load()
	p := placement.PartitionOf(placement.ObjectID(class, name), c.rt.Partitions())
	if st == nil || p >= len(st.Partitions) {
		return rpc.Peer{}, false, apierr.NotExecuted(fmt.Errorf("%w: cluster not formed yet", apierr.ErrOwnerUnavailable))
	}
	part := st.Partitions[p]
	if !part.Ready() {
		return rpc.Peer{}, false, apierr.NotExecuted(fmt.Errorf("%w: partition %d is moving from %s to %s", apierr.ErrOwnerUnavailable, p, part.Owner, part.Target))
	}
	if part.Owner == c.cfg.Name {
		if err := c.Fence(p); err != nil {
			return rpc.Peer{}, false, err
		}
		return rpc.Peer{}, true, nil
	}
	m := st.Members[part.Owner]
	if m == nil || m.Raft == "" {
		return rpc.Peer{}, false, apierr.NotExecuted(fmt.Errorf("%w: owner %q of partition %d unknown", apierr.ErrOwnerUnavailable, part.Owner, p))
	}
	if m.DataLost {
		return rpc.Peer{}, false, apierr.NotExecuted(dataLostErr(m.Name, p))
	}
	return rpc.Peer{Name: m.Name, Addr: m.Raft}, false, nil
}

// Epoch implements rpc.Router.
func (c *Cluster) Epoch() uint64 {
	if st := c.state.Load(); st != nil {
		return st.Epoch
	}
	return 0
}

// followPlacement pulls partitions moving here and lets go of those that
// moved away.
func (c *Cluster) followPlacement() {
	st := c.state.Load()
	if st == nil || len(st.Partitions) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, part := range st.Partitions {
		// A move this node completed may still show here as pending for a
		// moment (its handoff_done is committed, not yet applied here):
		// pulling it again would install the old copy over new writes.
		if part.Target == c.cfg.Name && part.Owner != c.cfg.Name && !c.installing[p].Load() && c.pulled[p] != part.Since {
			c.installing[p].Store(true)
			c.wg.Add(1)
			go func(p int, owner string, since uint64) {
				defer c.wg.Done()
				err := c.pull(p, owner, since)
				c.mu.Lock()
				c.installing[p].Store(false)
				c.mu.Unlock()
				if err != nil {
					c.log.Warn("handoff pull failed; will retry", "partition", p, "from", owner, "err", err)
				}
			}(p, part.Owner, part.Since)
		}
		mine := part.Owner == c.cfg.Name
		if c.owned[p] && !mine && part.Owner != "" {
			// Handed off and committed: our copy is no longer the object.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.rt.DropPartition(ctx, p)
			cancel()
			if err != nil {
				c.log.Error("cannot drop a handed-off partition", "partition", p, "err", err)
				continue
			}
		}
		c.owned[p] = mine
	}
}

// pull fetches partition p from its owner, verifies and installs it, then
// commits the handoff.
func (c *Cluster) pull(p int, owner string, since uint64) error {
	st := c.state.Load()
	m := st.Members[owner]
	if m == nil {
		return fmt.Errorf("owner %q unknown", owner)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	q := url.Values{"to": {c.cfg.Name}, "since": {strconv.FormatUint(since, 10)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Raft+"/v1/internal/partitions/"+strconv.Itoa(p)+"/archive?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.peers.Do(rpc.Peer{Name: m.Name, Addr: m.Raft}, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dir, err := os.MkdirTemp(filepath.Join(c.rt.DataDir()), ".incoming-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tr := tar.NewReader(resp.Body)
	complete := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		switch {
		case h.Name == "END":
			complete = true
		default:
			id, ok := node.ObjectFileID(h.Name)
			if !ok || filepath.Base(h.Name) != h.Name {
				return fmt.Errorf("unexpected archive entry %q", h.Name)
			}
			path := filepath.Join(dir, id+".db")
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, c.rt.MaxObjectBytes()+1))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("receive %s: %w", h.Name, err)
			}
			if err := objectstore.ValidateImport(path, c.rt.MaxObjectBytes()); err != nil {
				return fmt.Errorf("verify %s: %w", h.Name, err)
			}
		}
	}
	if !complete {
		return fmt.Errorf("archive of partition %d ended early", p)
	}
	// Install only for the move this pull was for: never over a copy this
	// node serves, never for a move that was cancelled or replaced.
	cur := c.state.Load().Partitions[p]
	if cur.Owner != owner || cur.Target != c.cfg.Name || cur.Since != since {
		return fmt.Errorf("partition %d changed while it was pulled (now owner %q, target %q, since %d): archive discarded", p, cur.Owner, cur.Target, cur.Since)
	}
	if err := c.rt.AdoptPartition(p, dir); err != nil {
		return err
	}
	if err := c.Apply(ctx, replication.Command{Kind: replication.CmdHandoffDone, Partition: p, Name: c.cfg.Name, Epoch: since}); err != nil {
		return err
	}
	c.mu.Lock()
	c.pulled[p] = since
	c.mu.Unlock()
	return nil
}

// PartitionArchive streams partition p to its new owner: the fence
// already refuses p (it is moving), so once its events drain its files
// are still.
func (c *Cluster) PartitionArchive(ctx context.Context, p int, to string, since uint64, w io.Writer) error {
	st := c.state.Load()
	if st == nil || p < 0 || p >= len(st.Partitions) {
		return fmt.Errorf("%w: no partition %d", apierr.ErrNotFound, p)
	}
	if !c.caughtUp.Load() {
		return fmt.Errorf("%w: catching up with the Raft log", apierr.ErrOwnerUnavailable)
	}
	if err := c.dataMissing(st); err != nil {
		return err // never hand on an empty copy as the partition
	}
	part := st.Partitions[p]
	if part.Owner != c.cfg.Name || part.Target == "" {
		return fmt.Errorf("%w: partition %d is not moving away from here", apierr.ErrConflict, p)
	}
	if part.Target != to || part.Since != since {
		return fmt.Errorf("%w: partition %d is moving to %s since epoch %d, not to %s since %d", apierr.ErrConflict, p, part.Target, part.Since, to, since)
	}
	if err := c.rt.ClosePartition(ctx, p); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries, err := os.ReadDir(c.rt.PartitionDir(p))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		if _, ok := node.ObjectFileID(e.Name()); !ok {
			continue
		}
		if err := addExport(tw, filepath.Join(c.rt.PartitionDir(p), e.Name()), e.Name()); err != nil {
			return err
		}
	}
	// The move may have completed (a puller that asked twice) or changed
	// meanwhile, and this node's copy been set aside mid-read: then no
	// END, and the puller discards what it got.
	if now := c.state.Load().Partitions[p]; now.Owner != c.cfg.Name || now.Target != to || now.Since != since {
		return fmt.Errorf("%w: partition %d moved on while it was archived", apierr.ErrConflict, p)
	}
	// The alarms live in the replicated schedule: the new owner arms them
	// from there once the partition is ready on it. END marks a complete
	// archive.
	if err := tw.WriteHeader(&tar.Header{Name: "END", Mode: 0o600}); err != nil {
		return err
	}
	return tw.Close()
}

// addExport writes a consistent copy of one object file into the archive.
func addExport(tw *tar.Writer, path, name string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".handoff-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := objectstore.Export(path, tmp)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: n}); err != nil {
		return err
	}
	_, err = io.Copy(tw, tmp)
	return err
}

// RemoveMember takes a member out for good after waiting out its lease,
// so it cannot still be serving when its partitions are reassigned.
func (c *Cluster) RemoveMember(ctx context.Context, name string) error {
	st := c.state.Load()
	m := st.Members[name]
	if m == nil {
		return fmt.Errorf("%w: no member %q", apierr.ErrNotFound, name)
	}
	if name == c.cfg.Name {
		return fmt.Errorf("%w: a node cannot remove itself; use SIGTERM to leave", apierr.ErrBadRequest)
	}
	for _, p := range c.ml.Peers() {
		if p.Name == name && p.State != "dead" {
			return fmt.Errorf("%w: %s is not yet declared dead (gossip says %s): failure detection takes about %s after a node stops; "+
				"if it is running, stop it instead (it then leaves gracefully, handing its data off)", apierr.ErrConflict, name, p.State, c.ml.DeadAfter().Round(time.Second))
		}
	}
	if !c.raft.IsLeader() {
		// Only the leader can take the member out of the Raft group.
		leaderID, _ := c.raft.Leader()
		lm := st.Members[leaderID]
		if lm == nil {
			return fmt.Errorf("%w: no known leader", apierr.ErrOwnerUnavailable)
		}
		_, err := c.peers.Call(ctx, rpc.Peer{Name: lm.Name, Addr: lm.Raft}, http.MethodPost, "/v1/cluster/members/"+url.PathEscape(name)+"/remove?force=true", nil)
		return err
	}
	// Cut it off from Raft first: even if only gossip lost it, it hears
	// from no leader from now on, so its lease runs out and it stops
	// serving before its partitions are given away.
	if err := c.raft.RemoveServer(name); err != nil {
		return fmt.Errorf("%w: remove %s from Raft: %v", apierr.ErrOwnerUnavailable, name, err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * c.lease()):
	}
	if err := c.Apply(ctx, replication.Command{Kind: replication.CmdRemove, Name: name}); err != nil {
		return err
	}
	c.log.Warn("member removed by an operator; its partitions were reassigned empty", "member", name)
	return nil
}

// LocalObjects lists this node's catalog (its share of a cluster listing).
func (c *Cluster) LocalObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error) {
	return c.rt.LocalObjects(ctx, class, after, limit)
}

// Leave hands every partition of this node to the others, then leaves
// gossip and Raft. It returns when the committed state says this node has
// left, or when ctx ends.
func (c *Cluster) Leave(ctx context.Context) error {
	c.leaving.Store(true)
	if err := c.Apply(ctx, replication.Command{Kind: replication.CmdLeave, Name: c.cfg.Name}); err != nil {
		return err
	}
	for {
		st := c.state.Load()
		if m := st.Members[c.cfg.Name]; m != nil && m.Status == replication.Left {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: partitions not handed off in time: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if c.raft.IsLeader() {
		c.raft.LeadershipTransfer()
	}
	return nil
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
		err = errors.Join(err, c.port.Close())
	}
	return err
}

// SetPeerHandler sets what serves the node-to-node HTTP API on the peer
// port (rpc.Server.PeerHandler); until then peers get 503.
func (c *Cluster) SetPeerHandler(h http.Handler) { c.peerHandler.Store(&h) }

// PeerSecure reports whether the peer port admits only authenticated
// nodes, so requests arriving there can be trusted.
func (c *Cluster) PeerSecure() bool { return c.cfg.TLS != nil }

// Forwarder is the client that forwards requests to other nodes' peer
// ports, at the addresses Route returns.
func (c *Cluster) Forwarder() *http.Client { return c.fwd }

func (c *Cluster) servePeer(w http.ResponseWriter, r *http.Request) {
	if h := c.peerHandler.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, `{"error":{"code":"OWNER_UNAVAILABLE","message":"node starting"}}`, http.StatusServiceUnavailable)
}

// Info describes the cluster for /v1/cluster.
func (c *Cluster) Info() rpc.ClusterInfo {
	st := c.state.Load()
	leader, _ := c.raft.Leader()
	info := rpc.ClusterInfo{Node: c.cfg.Name, Leader: leader, Epoch: st.Epoch, Partitions: len(st.Partitions), CatchingUp: !c.caughtUp.Load()}
	gossip := map[string]string{}
	for _, p := range c.ml.Peers() {
		gossip[p.Name] = p.State
	}
	counts := st.Counts()
	names := make([]string, 0, len(st.Members))
	for n := range st.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := st.Members[n]
		status := gossip[n]
		switch {
		case m.Status == replication.Left:
			status = "left"
		case m.Status == replication.Removed:
			status = "removed"
		case status == "":
			status = "dead"
		}
		info.Members = append(info.Members, rpc.Member{Name: n, HTTP: m.HTTP, Status: status, Partitions: counts[n], DataMissing: m.DataLost})
	}
	for _, p := range st.Partitions {
		m := st.Members[p.Owner]
		if !p.Ready() || m == nil || m.DataLost || gossip[p.Owner] == "dead" || gossip[p.Owner] == "" {
			info.UnavailablePartitions++
		}
	}
	return info
}

// Ready reports whether this node is joined, knows a leader, and owns
// only ready partitions.
func (c *Cluster) Ready() error {
	st := c.state.Load()
	if m := st.Members[c.cfg.Name]; m == nil || m.Status != replication.Active {
		return fmt.Errorf("%w: not an active member yet", apierr.ErrOwnerUnavailable)
	}
	if id, _ := c.raft.Leader(); id == "" {
		return fmt.Errorf("%w: no Raft leader known", apierr.ErrOwnerUnavailable)
	}
	if !c.caughtUp.Load() {
		return fmt.Errorf("%w: catching up with the cluster", apierr.ErrOwnerUnavailable)
	}
	if err := c.dataMissing(st); err != nil {
		return err
	}
	for p, part := range st.Partitions {
		if part.Target == c.cfg.Name || part.Owner == c.cfg.Name && part.Target != "" {
			return fmt.Errorf("%w: partition %d is moving", apierr.ErrOwnerUnavailable, p)
		}
	}
	return nil
}

// ListObjects merges every active member's share of a listing, in key
// order (class, then name), a page at a time.
func (c *Cluster) ListObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error) {
	st := c.state.Load()
	var all []rpc.ObjectInfo
	var unavailable []string
	more := false
	for _, name := range st.ActiveMembers() {
		var part rpc.ObjectList
		if name == c.cfg.Name {
			var err error
			if part, err = c.rt.LocalObjects(ctx, class, after, limit); err != nil {
				return rpc.ObjectList{}, err
			}
		} else {
			q := url.Values{"class": {class}, "after": {after}, "limit": {strconv.Itoa(limit)}}.Encode()
			b, err := c.peers.Call(ctx, rpc.Peer{Name: name, Addr: st.Members[name].Raft}, http.MethodGet, "/v1/internal/objects?"+q, nil)
			if err != nil {
				// Answer what the live members hold, and say whose
				// objects are missing.
				c.log.Debug("list objects: member not asked", "member", name, "err", err)
				unavailable = append(unavailable, name)
				continue
			}
			if err := json.Unmarshal(b, &part); err != nil {
				return rpc.ObjectList{}, fmt.Errorf("%w: list objects on %s: %v", apierr.ErrInternal, name, err)
			}
		}
		all = append(all, part.Objects...)
		if part.Cursor != "" {
			more = true
		}
	}
	key := func(o rpc.ObjectInfo) string { return o.Class + "\x00" + o.Name }
	sort.Slice(all, func(i, j int) bool { return key(all[i]) < key(all[j]) })
	out := rpc.ObjectList{Objects: all, Unavailable: unavailable}
	if len(all) > limit {
		out.Objects, more = all[:limit], true
	}
	if out.Objects == nil {
		out.Objects = []rpc.ObjectInfo{}
	}
	if more && len(out.Objects) > 0 {
		out.Cursor = base64.RawURLEncoding.EncodeToString([]byte(key(out.Objects[len(out.Objects)-1])))
	}
	return out, nil
}

// State is this node's copy of the committed cluster state.
func (c *Cluster) State() *replication.ClusterState { return c.state.Load().Clone() }

// RaftServers lists the Raft configuration as this node sees it.
func (c *Cluster) RaftServers() ([]replication.Server, error) { return c.raft.Servers() }

// Isolate cuts this node off from the cluster as a network partition
// would, for tests: gossip and Raft stop, the HTTP API keeps answering.
// Fencing must then refuse every event once the lease runs out.
func (c *Cluster) Isolate() {
	c.ml.Close()
	c.raft.Close()
	c.port.Close()
}

// joinTargets are the gossip addresses to join through: --join, and the
// other active members this node's committed state knows.
func (c *Cluster) joinTargets() []string {
	out := append([]string(nil), c.cfg.Join...)
	if st := c.state.Load(); st != nil {
		for _, name := range st.ActiveMembers() {
			if m := st.Members[name]; name != c.cfg.Name && m.Gossip != "" && !slices.Contains(out, m.Gossip) {
				out = append(out, m.Gossip)
			}
		}
	}
	return out
}

// metOthers reports whether gossip sees another member alive.
func (c *Cluster) metOthers() bool {
	for _, p := range c.ml.Peers() {
		if p.Name != c.cfg.Name && p.State == "alive" {
			return true
		}
	}
	return false
}

// GossipAlive lists the members gossip sees alive, this node included.
func (c *Cluster) GossipAlive() []string {
	var out []string
	for _, p := range c.ml.Peers() {
		if p.State == "alive" {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Alarms lists the replicated schedule as this node has it.
func (c *Cluster) Alarms() []replication.Alarm { return c.raft.Alarms(nil) }

// Owns reports whether the committed state gives partition p to this
// node and it is not moving away (lease aside).
func (c *Cluster) Owns(p int) bool {
	st := c.state.Load()
	return st != nil && p < len(st.Partitions) && st.Partitions[p].Owner == c.cfg.Name && st.Partitions[p].Target == ""
}

// Addrs are the Raft and gossip addresses this node listens on.
func (c *Cluster) Addrs() (raftAddr, gossipAddr string) { return c.raft.Addr(), c.ml.Addr() }

// onAlarm keeps the timers in step with each committed alarm change,
// wherever it came from (this node's events, log replay after a restart,
// a snapshot): an alarm of a partition this node owns is armed here.
func (c *Cluster) onAlarm(a replication.Alarm, deleted bool, st *replication.ClusterState) {
	if c.rt.AppliedHere(a, deleted) {
		return // this node already committed a newer change and armed it
	}
	if !c.caughtUp.Load() {
		return // replaying: syncTimers arms everything once caught up
	}
	mine := a.Partition < len(st.Partitions) && st.Partitions[a.Partition].Owner == c.cfg.Name && st.Partitions[a.Partition].Ready()
	if deleted || !mine {
		c.rt.DisarmAlarm(a.ObjectID)
		return
	}
	c.rt.ArmAlarm(a)
}
