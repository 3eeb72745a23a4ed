package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"

	"github.com/dura-dev/dura/internal/logging"
	"github.com/dura-dev/dura/placement"
)

// ErrNotLeader is returned by Apply on a node that is not the Raft leader.
var ErrNotLeader = errors.New("not the raft leader")

// RaftConfig configures a node's member of the cluster's Raft group.
type RaftConfig struct {
	// NodeID names the node; it must be stable across restarts.
	NodeID string
	// Bind is the Raft TCP listen address (host:port; port 0 picks one).
	Bind string
	// Advertise is the address other nodes dial; empty means the bound one.
	Advertise string
	// Listener and Dial, if set, carry Raft instead of a TCP listener on
	// Bind: the node's peer port, which authenticates and encrypts.
	// Listener.Addr() is then the address other nodes dial.
	Listener net.Listener
	Dial     func(address string, timeout time.Duration) (net.Conn, error)
	// Dir holds raft.db (log and stable store) and snapshots.
	Dir string
	// Assign places partitions (placement.Assign).
	Assign Assigner
	// SnapshotThreshold is how many log entries trigger a snapshot; 0
	// means 8192.
	SnapshotThreshold uint64
	// Logger receives Raft's logs; nil discards them.
	Logger *slog.Logger
	// Timing sets Raft's timeouts; the zero value is DefaultTiming.
	Timing Timing
	// OnChange, if set, is called with the new state after it changed (a
	// command applied or a snapshot restored), never concurrently with
	// itself. The state is shared and must not be modified.
	OnChange func(st *ClusterState)
	// OnAlarm, if set, is called after each alarm command is applied
	// (deleted reports a deletion), with the cluster state at that point
	// of the log. It must be quick: it runs on Raft's apply goroutine.
	OnAlarm func(a Alarm, deleted bool, st *ClusterState)
	// OnModules, if set, is called with every module after a module
	// command is applied or a snapshot restored, on Raft's apply goroutine.
	OnModules func([]Module)
}

// RaftNode is this node's member of the Raft group holding ClusterState.
// All methods are safe to call concurrently.
type RaftNode struct {
	cfg       RaftConfig
	fsm       *clusterFSM
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	contact   *contactTracker // heartbeat failures seen as leader
	answers   *answers        // appends each follower accepted from this node

	mu      sync.Mutex
	refused map[string]time.Time // refusal message -> when last logged
}

// NewRaftNode checks cfg; it does no I/O until Open.
func NewRaftNode(cfg RaftConfig) (*RaftNode, error) {
	if cfg.NodeID == "" || cfg.Bind == "" && cfg.Listener == nil || cfg.Dir == "" || cfg.Assign == nil {
		return nil, fmt.Errorf("raft config: node ID, bind address, dir and assigner are required")
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	fsm := &clusterFSM{state: &ClusterState{}, onChange: cfg.OnChange, onAlarm: cfg.OnAlarm, onModules: cfg.OnModules}
	fsm.assign = (&placementCache{assign: cfg.Assign}).Assign
	return &RaftNode{cfg: cfg, fsm: fsm, refused: map[string]time.Time{}}, nil
}

// Open starts Raft with the stored log and snapshots, if any.
func (n *RaftNode) Open() error {
	if err := os.MkdirAll(n.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("open raft: %w", err)
	}
	hl := logging.Raft(n.cfg.Logger)
	var adv net.Addr
	if n.cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", n.cfg.Advertise)
		if err != nil {
			return fmt.Errorf("open raft: advertise address: %w", err)
		}
		adv = a
	}
	var tr *raft.NetworkTransport
	if n.cfg.Listener != nil {
		tr = raft.NewNetworkTransportWithLogger(streamLayer{n.cfg.Listener, n.cfg.Dial}, 4, 10*time.Second, hl)
	} else {
		t, err := raft.NewTCPTransportWithLogger(n.cfg.Bind, adv, 4, 10*time.Second, hl)
		if err != nil {
			return fmt.Errorf("open raft transport: %w", err)
		}
		tr = t
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(n.cfg.Dir, "raft.db"))
	if err != nil {
		tr.Close()
		return fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.Dir, 2, hl)
	if err != nil {
		tr.Close()
		store.Close()
		return fmt.Errorf("open raft snapshots: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = hl
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	t := n.cfg.Timing
	if t == (Timing{}) {
		t = DefaultTiming()
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = t.Heartbeat, t.Election, t.LeaderLease
	rc.CommitTimeout, rc.SnapshotInterval = t.Commit, t.SnapshotInterval
	n.answers = newAnswers()
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, pipelinedTransport{NetworkTransport: tr, answers: n.answers})
	if err != nil {
		tr.Close()
		store.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft, n.transport, n.store = r, tr, store
	n.contact = watchContact(r, max(t.LeaderLease/5, 10*time.Millisecond))
	return nil
}

// Addr is the address other nodes reach this node's Raft at.
func (n *RaftNode) Addr() string { return string(n.transport.LocalAddr()) }

// HasState reports whether this node has Raft history (it was part of a
// cluster before), in which case it must not bootstrap.
func (n *RaftNode) HasState() (bool, error) {
	return raft.HasExistingState(n.store, n.store, nopSnapshots{})
}

// Bootstrap makes this node a one-voter cluster; a node with history
// refuses.
func (n *RaftNode) Bootstrap() error {
	return n.BootstrapWith([]Server{{ID: n.cfg.NodeID, Address: n.Addr(), Voter: true}})
}

// BootstrapWith forms the first cluster from servers (all voters). Every
// founding node must call it with the same list; a node with history
// ignores it.
func (n *RaftNode) BootstrapWith(servers []Server) error {
	var conf raft.Configuration
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: raft.Voter})
	}
	f := n.raft.BootstrapCluster(conf)
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// Apply commits c through the Raft log and returns the state machine's
// verdict. Only the leader can apply. A member change the state machine
// would refuse on the state as it is (a join the ring has no room for) is
// refused before it is written to the log, and logged.
func (n *RaftNode) Apply(c Command, timeout time.Duration) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := n.fsm.check(c); err != nil {
		n.logRefusal(c, err)
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f := n.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return ErrNotLeader
		}
		return fmt.Errorf("raft apply: %w", err)
	}
	if resp, ok := f.Response().(error); ok && resp != nil {
		n.logRefusal(c, resp)
		return resp
	}
	return nil
}

// logRefusal tells the operator, at most once a minute per message, that
// a member change was refused: the leader retries admitting a member it
// sees by gossip four times a second.
func (n *RaftNode) logRefusal(c Command, err error) {
	if n.cfg.Logger == nil || c.Kind != CmdJoin && c.Kind != CmdLeave && c.Kind != CmdRemove {
		return
	}
	msg, now := err.Error(), time.Now()
	n.mu.Lock()
	last, seen := n.refused[msg]
	log := !seen || now.Sub(last) > time.Minute
	if log {
		if len(n.refused) > 1000 {
			clear(n.refused)
		}
		n.refused[msg] = now
	}
	n.mu.Unlock()
	if log {
		name := c.Name
		if c.Kind == CmdJoin {
			name = c.Member.Name
		}
		n.cfg.Logger.Error("cluster change refused", "kind", c.Kind, "member", name, "err", err)
	}
}

// State is a copy of the committed cluster state on this node.
func (n *RaftNode) State() *ClusterState {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	return n.fsm.state.Clone()
}

// Leader returns the leader's ID and Raft address, empty if unknown.
func (n *RaftNode) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// LeadershipTransfer hands leadership to another voter.
func (n *RaftNode) LeadershipTransfer() error { return n.raft.LeadershipTransfer().Error() }

// LastContact is when this node last heard from a leader; on the leader
// itself, when a quorum last confirmed it leads (checked every fifth of
// the leader lease), or, before the first confirmation, when it last
// heard from the leader before it.
func (n *RaftNode) LastContact() time.Time {
	lc := n.raft.LastContact()
	if n.raft.State() == raft.Leader {
		if v := n.contact.verifiedAt(); v.After(lc) {
			return v
		}
	}
	return lc
}

// Barrier waits until the leader has applied every entry committed
// before the call (a new leader may not have yet). Leader only.
func (n *RaftNode) Barrier(timeout time.Duration) error { return n.raft.Barrier(timeout).Error() }

// AppliedIndex is the index of the last command applied to this node's
// state: after a Barrier on the leader it covers every committed command.
func (n *RaftNode) AppliedIndex() uint64 { return n.fsm.applied.Load() }

// IsLeader reports whether this node leads.
func (n *RaftNode) IsLeader() bool { return n.raft.State() == raft.Leader }

// Server is a member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Servers lists the Raft configuration.
func (n *RaftNode) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddServer adds (or updates) a server as a voter or non-voter. Leader only.
func (n *RaftNode) AddServer(id, addr string, voter bool) error {
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	}
	return f.Error()
}

// RemoveServer takes a server out of the Raft configuration. Leader only.
func (n *RaftNode) RemoveServer(id string) error {
	return n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error()
}

// Snapshot forces a snapshot (and log compaction).
func (n *RaftNode) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops Raft and closes its files.
func (n *RaftNode) Close() error {
	if n.raft == nil {
		return nil
	}
	n.contact.stop(n.raft)
	err := n.raft.Shutdown().Error()
	n.transport.Close()
	n.store.Close()
	return err
}

// clusterFSM applies Commands to a ClusterState and to the alarm
// schedule. The schedule is kept apart from ClusterState: it can hold
// hundreds of thousands of entries, and ClusterState is copied on every
// placement change.
type clusterFSM struct {
	mu     sync.RWMutex
	state  *ClusterState
	alarms map[string]Alarm
	// assign is the configured Assigner behind a placementCache, so the
	// check before a join is committed and its apply compute placement
	// once.
	assign   Assigner
	onChange func(*ClusterState)
	onAlarm  func(Alarm, bool, *ClusterState)
	// modules are the deployed JavaScript modules (modules.go).
	modules   moduleTable
	onModules func([]Module)
	// applied is the index of the last command applied to the state
	// (Raft's own applied index runs ahead: it counts entries handed to
	// the FSM goroutine, which may still be replaying them).
	applied atomic.Uint64
}

func (f *clusterFSM) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("decode command: %w", err)
	}
	switch c.Kind {
	case CmdPutModule, CmdDeleteModule:
		return f.applyModule(c)
	case CmdPutAlarm:
		if c.Alarm == nil || c.Alarm.ObjectID == "" {
			return fmt.Errorf("put_alarm without an alarm")
		}
		f.mu.Lock()
		if f.alarms == nil {
			f.alarms = map[string]Alarm{}
		}
		f.alarms[c.Alarm.ObjectID] = *c.Alarm
		st := f.state
		f.mu.Unlock()
		if f.onAlarm != nil {
			f.onAlarm(*c.Alarm, false, st)
		}
		return nil
	case CmdDeleteAlarm:
		f.mu.Lock()
		var gone []Alarm
		id := c.ObjectID
		if id == "" {
			id = c.Name // an entry of an earlier version
		}
		if old, had := f.alarms[id]; had && id != "" {
			delete(f.alarms, id)
			gone = append(gone, old)
		}
		for _, fa := range c.Fired {
			if old, had := f.alarms[fa.ObjectID]; had && old.At.Equal(fa.At) {
				delete(f.alarms, fa.ObjectID)
				gone = append(gone, old)
			}
		}
		st := f.state
		f.mu.Unlock()
		if f.onAlarm != nil {
			for _, old := range gone {
				f.onAlarm(old, true, st)
			}
		}
		return nil
	}
	f.mu.Lock()
	// Apply on a copy: a refused command must leave the state untouched.
	next := f.state.Clone()
	if err := next.Apply(c, f.assign); err != nil {
		f.mu.Unlock()
		return err
	}
	f.state = next
	f.mu.Unlock()
	if f.onChange != nil {
		f.onChange(next) // states are replaced, never modified: safe to share
	}
	return nil
}

// check applies a member change to a copy of the state and returns the
// state machine's refusal, if any, without changing anything (a refused
// command is then never written to the log).
func (f *clusterFSM) check(c Command) error {
	if c.Kind != CmdJoin && c.Kind != CmdLeave && c.Kind != CmdRemove && c.Kind != CmdReincarnate {
		return nil
	}
	f.mu.RLock()
	next := f.state.Clone()
	f.mu.RUnlock()
	return next.Apply(c, f.assign)
}

// placementCache remembers the last placement computed: a member change
// is placed twice on the leader (checked, then applied), and a refused
// join is retried by the leader until the member goes away. All methods
// are safe to call concurrently.
type placementCache struct {
	assign Assigner

	mu      sync.Mutex
	members []string
	ring    placement.RingConfig
	want    []string
	err     error
}

// Assign is assign's answer for members and p, computed once per set.
// The answer is shared: callers must not modify it.
func (c *placementCache) Assign(members []string, p placement.RingConfig) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members != nil && c.ring == p && slices.Equal(c.members, members) {
		return c.want, c.err
	}
	want, err := c.assign(members, p)
	c.members, c.ring, c.want, c.err = slices.Clone(members), p, want, err
	if c.members == nil {
		c.members = []string{}
	}
	return want, err
}

// fsmSnapshot is what a snapshot holds.
type fsmSnapshot struct {
	State  *ClusterState `json:"state"`
	Alarms []Alarm       `json:"alarms"`
	// Modules are the deployed JavaScript modules.
	Modules []Module `json:"modules,omitempty"`
	// Index is the last command applied (0 in snapshots of older
	// versions).
	Index uint64 `json:"index,omitempty"`
}

func (f *clusterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	snap := fsmSnapshot{State: f.state, Alarms: make([]Alarm, 0, len(f.alarms)), Index: f.applied.Load(), Modules: f.modules.list()}
	for _, a := range f.alarms {
		snap.Alarms = append(snap.Alarms, a)
	}
	b, err := json.Marshal(snap)
	f.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return jsonSnapshot(b), nil
}

func (f *clusterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var snap fsmSnapshot
	if err := json.NewDecoder(rc).Decode(&snap); err != nil {
		return fmt.Errorf("restore cluster state: %w", err)
	}
	if snap.State == nil {
		snap.State = &ClusterState{}
	}
	alarms := make(map[string]Alarm, len(snap.Alarms))
	for _, a := range snap.Alarms {
		alarms[a.ObjectID] = a
	}
	f.mu.Lock()
	f.state, f.alarms = snap.State, alarms
	f.mu.Unlock()
	f.applied.Store(snap.Index)
	f.modules.restore(snap.Modules)
	if f.onModules != nil {
		f.onModules(snap.Modules)
	}
	if f.onChange != nil {
		f.onChange(snap.State)
	}
	return nil
}

// Alarm returns the committed alarm of an object.
func (n *RaftNode) Alarm(id string) (Alarm, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	a, ok := n.fsm.alarms[id]
	return a, ok
}

// Alarms returns the committed alarms that keep returns true for.
func (n *RaftNode) Alarms(keep func(Alarm) bool) []Alarm {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	var out []Alarm
	for _, a := range n.fsm.alarms {
		if keep == nil || keep(a) {
			out = append(out, a)
		}
	}
	return out
}

// AlarmCount is the number of committed alarms.
func (n *RaftNode) AlarmCount() int {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	return len(n.fsm.alarms)
}

type jsonSnapshot []byte

func (s jsonSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (jsonSnapshot) Release() {}

// nopSnapshots lets HasExistingState ignore snapshots: a node with
// snapshots always has log or stable state too.
type nopSnapshots struct{ raft.SnapshotStore }

func (nopSnapshots) List() ([]*raft.SnapshotMeta, error) { return nil, nil }

// streamLayer carries Raft over a listener and dialer given by the node.
type streamLayer struct {
	net.Listener
	dial func(address string, timeout time.Duration) (net.Conn, error)
}

func (s streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(address), timeout)
}

// Timing is Raft's clock: how soon a follower misses its leader and how
// often snapshots are considered. Use a preset.
type Timing struct {
	Heartbeat   time.Duration // a follower without a heartbeat this long starts an election
	Election    time.Duration // a candidate's election timeout
	LeaderLease time.Duration // a leader without a quorum's contact this long steps down
	Commit      time.Duration // the longest a leader waits to send an entry batch
	// SnapshotInterval is how often the snapshot threshold is checked: a
	// busy schedule must not let the log run for minutes between them.
	SnapshotInterval time.Duration
}

// DefaultTiming is for real networks: hashicorp/raft's defaults, with the
// snapshot threshold checked every 10 s.
func DefaultTiming() Timing {
	return Timing{Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond,
		Commit: 50 * time.Millisecond, SnapshotInterval: 10 * time.Second}
}

// LoopbackTiming is for several nodes on one machine (tests): quick, yet
// slow enough that a loaded 2-core machine does not lose its leader to
// late heartbeats.
func LoopbackTiming() Timing {
	return Timing{Heartbeat: 500 * time.Millisecond, Election: 500 * time.Millisecond, LeaderLease: 250 * time.Millisecond,
		Commit: 5 * time.Millisecond, SnapshotInterval: 2 * time.Second}
}
