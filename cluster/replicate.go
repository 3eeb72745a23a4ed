package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/peer"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/replication/shipping"
	"github.com/dura-dev/dura/rpc"
)

// The data path of a replicated partition: its primary numbers the
// records of its commits, ships each to the partition's in-sync replicas
// and to the replicas being seeded (followers), and acknowledges a write
// once all of them have it durable, taking a replica that did not answer
// in time out of the in-sync set (a Raft compare-and-set) before going on
// without it. A follower that fails is only dropped: it starts over, and
// the primary admits into the in-sync set only a follower it has not
// dropped (AdmitReplica): one that missed a record never counts.

// stream is partition p's record numbering on its primary.
type stream struct {
	mu  sync.Mutex
	seq uint64
	// followers: replicas seeded from here, each with the number of its
	// seeding (gen), until a record shipped to it fails.
	followers map[string]uint64
	gen       uint64
	// doubt: in-sync replicas that missed a write whose outcome is
	// unknown, kept until Confirm has them out of the set.
	doubt map[string]bool
}

// forgetFollowers drops the followers of an earlier time this node was
// the primary: they were seeded from a copy since replaced, and the
// records of this node's new term must not reach them as if they
// followed it (a kept replica's receiver takes a newer primary's stream).
func (s *stream) forgetFollowers() {
	s.mu.Lock()
	s.followers = nil
	s.mu.Unlock()
}

// doubted records the in-sync replicas a write not acknowledged may be
// missing on.
func (s *stream) doubted(missing []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.doubt == nil {
		s.doubt = map[string]bool{}
	}
	for _, m := range missing {
		s.doubt[m] = true
	}
}

// Replicate implements node.Replicator.
func (c *Cluster) Replicate(p int, entry []byte) func() error {
	st := c.state.Load()
	if st == nil || p >= len(st.Partitions) {
		return nil // the fence let the event in: the state knows p
	}
	part := st.Partitions[p]
	s := &c.streams[p]
	s.mu.Lock()
	var to []string
	for _, m := range part.InSync {
		if m != c.cfg.Name {
			to = append(to, m)
		}
	}
	var followed map[string]uint64 // the followers shipped to, and their seedings
	for m, gen := range s.followers {
		switch {
		case !slices.Contains(part.Replicas, m):
			delete(s.followers, m) // no longer a replica
		case !slices.Contains(to, m):
			to = append(to, m)
			if followed == nil {
				followed = map[string]uint64{}
			}
			followed[m] = gen
		}
	}
	if len(to) == 0 {
		s.mu.Unlock()
		if err := c.writableErr(st, p); err != nil {
			return func() error { return c.outcomeUnknown(err) }
		}
		return nil
	}
	s.seq++
	pending := c.ship.Ship(shipping.Record{Partition: p, Version: part.Version, Run: c.run, Seq: s.seq, Entry: entry}, to, to)
	s.mu.Unlock()
	return func() error {
		lagging := pending.Wait(context.Background())
		dropped := s.missed(func() replication.Partition { return c.state.Load().Partitions[p] }, part, lagging, followed)
		if len(dropped) > 0 {
			if err := c.leaveInSync(p, dropped); err != nil {
				s.doubted(dropped)
				return c.outcomeUnknown(err)
			}
		}
		if err := c.writableErr(c.state.Load(), p); err != nil {
			s.doubted(dropped)
			return c.outcomeUnknown(err)
		}
		return nil
	}
}

// missed sorts the replicas that did not acknowledge a record: those in
// the in-sync set when it was shipped (was) or now (read under the lock
// AdmitReplica holds until the member it adds is in the set) must leave
// the set before the write is acknowledged; a follower is dropped,
// unless it was seeded again since the record was shipped (followed:
// the seedings it went to), and AdmitReplica will refuse it.
func (s *stream) missed(current func() replication.Partition, was replication.Partition, lagging []string, followed map[string]uint64) (dropped []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := current()
	for _, m := range lagging {
		if slices.Contains(was.InSync, m) || slices.Contains(now.InSync, m) {
			dropped = append(dropped, m)
			continue
		}
		if gen, ok := s.followers[m]; ok && gen == followed[m] {
			delete(s.followers, m)
		}
	}
	return dropped
}

// AdmitReplica implements rpc.ClusterInternal: member, seeded from this
// node's copy of partition p, enters p's in-sync set if every record
// shipped to it since its snapshot began was acknowledged (it is still
// a follower). The stream stays locked until the change is applied here,
// so each write decides with member either a follower still (refused
// admission if it misses the write) or in the set (taken out again).
func (c *Cluster) AdmitReplica(ctx context.Context, p int, member string) error {
	st := c.state.Load()
	if st == nil || p < 0 || p >= len(st.Partitions) {
		return fmt.Errorf("%w: no partition %d", apierr.ErrNotFound, p)
	}
	s := &c.streams[p]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.followers[member]; !ok {
		return fmt.Errorf("%w: %s does not follow partition %d from %s: it missed a record since its snapshot, or was seeded elsewhere; seed it again", apierr.ErrConflict, member, p, c.cfg.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.commitInSync(ctx, p, func(st *replication.ClusterState) (*replication.InSyncChange, error) {
		part := st.Partitions[p]
		if err := c.primaryErr(st, p); err != nil {
			return nil, err
		}
		if slices.Contains(part.InSync, member) {
			return nil, nil
		}
		if !slices.Contains(part.Replicas, member) {
			return nil, fmt.Errorf("%w: %s is not a replica of partition %d", apierr.ErrConflict, member, p)
		}
		return &replication.InSyncChange{Add: []string{member}}, nil
	})
}

// commitInSync changes partition p's in-sync set as next asks (nil: as
// wanted), each change a compare-and-set on the partition's version as
// this node sees it, until next is satisfied or fails; it returns once
// this node applied the last change.
func (c *Cluster) commitInSync(ctx context.Context, p int, next func(st *replication.ClusterState) (*replication.InSyncChange, error)) error {
	for {
		st := c.state.Load()
		ch, err := next(st)
		if err != nil || ch == nil {
			return err
		}
		ch.Partition, ch.Version = p, st.Partitions[p].Version
		changed := c.Changed()
		if err := c.inSync.change(ctx, *ch); err != nil {
			return fmt.Errorf("%w: in-sync change %+v of partition %d not committed: %v", apierr.ErrOwnerUnavailable, *ch, p, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: in-sync change of partition %d not applied on %s in time", apierr.ErrOwnerUnavailable, p, c.cfg.Name)
		}
	}
}

// Confirm implements node.Replicator. A write whose wait failed is on
// every in-sync replica that did not miss it; the ones that did are
// recorded (doubt) and stay in the set only while the compare-and-set
// taking them out fails. Once it went through, and this node still
// serves p in touch with the cluster, those writes are as durable as an
// acknowledged one: a replica added to the set since was seeded from
// this node's copy, which has them.
func (c *Cluster) Confirm(p int) error {
	st := c.state.Load()
	if st == nil || p >= len(st.Partitions) {
		return fmt.Errorf("%w: cluster not formed yet", apierr.ErrOwnerUnavailable)
	}
	s := &c.streams[p]
	s.mu.Lock()
	var missing []string
	for m := range s.doubt {
		if slices.Contains(st.Partitions[p].InSync, m) {
			missing = append(missing, m)
		} else {
			delete(s.doubt, m) // out: it is seeded from here to come back
		}
	}
	s.mu.Unlock()
	if len(missing) > 0 {
		if err := c.leaveInSync(p, missing); err != nil {
			return err
		}
	}
	// Not the --min-insync check: a write is refused below it, but one
	// already made is as safe on fewer copies, since only an in-sync
	// replica can be promoted.
	if err := c.primaryErr(c.state.Load(), p); err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range missing {
		delete(s.doubt, m)
	}
	s.mu.Unlock()
	return nil
}

// outcomeUnknown is why a committed write is not acknowledged.
func (c *Cluster) outcomeUnknown(err error) error {
	return fmt.Errorf("%w; the write was committed on %s before that, so its outcome is unknown", err, c.cfg.Name)
}

// Writable implements node.Replicator.
func (c *Cluster) Writable(p int) error {
	st := c.state.Load()
	if st == nil || p >= len(st.Partitions) {
		return fmt.Errorf("%w: cluster not formed yet", apierr.ErrOwnerUnavailable)
	}
	return c.writableErr(st, p)
}

// writableErr says why a write of partition p cannot be acknowledged
// now: this node is no longer its primary, or out of touch with Raft past
// its lease, or the in-sync set is below --min-insync. nil: it can.
func (c *Cluster) writableErr(st *replication.ClusterState, p int) error {
	if err := c.primaryErr(st, p); err != nil {
		return err
	}
	part := st.Partitions[p]
	need := st.WriteQuorum()
	if len(part.InSync) < need {
		return fmt.Errorf("%w: partition %d has %d in-sync replicas and writes need %d (--min-insync)", apierr.ErrOwnerUnavailable, p, len(part.InSync), need)
	}
	return nil
}

// primaryErr says why this node cannot act as partition p's primary now:
// another node is, or this one is out of touch with Raft past its lease.
func (c *Cluster) primaryErr(st *replication.ClusterState, p int) error {
	if owner := st.Partitions[p].Owner; owner != c.cfg.Name {
		return fmt.Errorf("%w: partition %d is served by %s now", apierr.ErrOwnerUnavailable, p, owner)
	}
	return c.inTouch()
}

// leaveInSync takes lagging replicas out of partition p's in-sync set and
// returns once the committed state shows them out (nil), or why that
// could not be done (then the write must not be acknowledged).
func (c *Cluster) leaveInSync(p int, names []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var removed []string
	err := c.commitInSync(ctx, p, func(st *replication.ClusterState) (*replication.InSyncChange, error) {
		part := st.Partitions[p]
		if part.Owner != c.cfg.Name {
			return nil, fmt.Errorf("%w: partition %d moved to %s during the write", apierr.ErrOwnerUnavailable, p, part.Owner)
		}
		var remove []string
		for _, m := range names {
			if m != part.Owner && slices.Contains(part.InSync, m) {
				remove = append(remove, m)
				if !slices.Contains(removed, m) {
					removed = append(removed, m)
				}
			}
		}
		if len(remove) == 0 {
			return nil, nil
		}
		return &replication.InSyncChange{Remove: remove}, nil
	})
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		c.metrics.shrinks.Add(float64(len(removed)))
		// A lost replica leaves the sets of all its partitions: one WARN
		// per replica per 30 s, the rest DEBUG.
		lvl, n := c.pullWarns.Level("in-sync:" + strings.Join(removed, ","))
		c.log.Log(ctx, lvl, "replicas left the in-sync set: they did not acknowledge in time", "partition", p, "replicas", removed, "partitions_since_warn", n)
	}
	return nil
}

// inSyncBatcher gathers in-sync changes of many partitions into one Raft
// command: a lost replica leaves the sets of all its partitions at once.
type inSyncBatcher struct {
	c       *Cluster
	mu      sync.Mutex
	pending []replication.InSyncChange
	waiters []chan error
	running bool
}

// change commits ch with whatever else is pending, and returns once the
// command that carried it was committed (or refused).
func (b *inSyncBatcher) change(ctx context.Context, ch replication.InSyncChange) error {
	done := make(chan error, 1)
	b.mu.Lock()
	b.pending = append(b.pending, ch)
	b.waiters = append(b.waiters, done)
	if !b.running {
		b.running = true
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *inSyncBatcher) flush() {
	for {
		b.mu.Lock()
		changes, waiters := b.pending, b.waiters
		b.pending, b.waiters = nil, nil
		if len(changes) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.c.Apply(ctx, replication.Command{Kind: replication.CmdInSync, InSync: changes})
		cancel()
		for _, w := range waiters {
			w <- err
		}
	}
}

// dialShip opens a shipping stream to member name's peer port.
func (c *Cluster) dialShip(ctx context.Context, name string) (net.Conn, error) {
	m := c.state.Load().Members[name]
	if m == nil || m.Raft == "" {
		return nil, fmt.Errorf("member %q unknown", name)
	}
	return peer.Dialer{TLS: c.cfg.TLS}.Dial(ctx, m.Raft, peer.KindShip)
}

// shipHello is what a shipping stream starts with: the sender's name
// (length byte, name) and the admin token a plain peer port checks.
func shipHello(name, adminToken string) []byte {
	b := append([]byte{byte(len(name))}, name...)
	return append(b, rpc.PeerToken(adminToken)...)
}

// checkShipHello says who opened a shipping stream, or why it may not: on
// a plain peer port with admin tokens, the hello must carry one of them,
// as a node-to-node HTTP call must (a TLS port admits only nodes).
func (c *Cluster) checkShipHello(b []byte) (string, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) || b[0] == 0 {
		return "", errors.New("malformed hello")
	}
	if c.recv == nil {
		return "", errors.New("this node keeps no replicas (it has no node log)")
	}
	name, token := string(b[1:1+int(b[0])]), string(b[1+int(b[0]):])
	if c.cfg.TLS == nil && c.cfg.AdminToken != "" && !rpc.HasToken(c.cfg.AdminToken, token) {
		return "", fmt.Errorf("%w: the shipping stream's token is not valid here", apierr.ErrUnauthenticated)
	}
	return name, nil
}

// serveShipping takes the shipping streams other nodes open to this one.
func (c *Cluster) serveShipping(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if !c.shipConns.add(conn) {
			conn.Close()
			return
		}
		go func() {
			defer c.shipConns.remove(conn)
			if err := shipping.ServeStream(conn, c.checkShipHello, c.recv.Receive); err != nil {
				c.log.Debug("shipping stream ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// connSet is the connections a listener's loop serves, closed together.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]bool{}
	}
	s.conns[c] = true
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// peerShipper delivers batches to peers' /v1/internal/replicate: the
// shipping streams' fallback for a node that takes none.
type peerShipper struct{ c *Cluster }

func (t peerShipper) Send(ctx context.Context, name string, batch []byte) ([]shipping.Ack, error) {
	m := t.c.state.Load().Members[name]
	if m == nil || m.Raft == "" {
		return nil, fmt.Errorf("member %q unknown", name)
	}
	b, err := t.c.peers.Call(ctx, rpc.Peer{Name: name, Addr: m.Raft}, http.MethodPost, "/v1/internal/replicate?from="+url.QueryEscape(t.c.cfg.Name), batch)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Acks []shipping.Ack `json:"acks"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("replicate to %s: %w", name, err)
	}
	return resp.Acks, nil
}

// ReceiveRecords takes a batch of records shipped here by a primary.
func (c *Cluster) ReceiveRecords(ctx context.Context, from string, batch []byte) (any, error) {
	acks, err := c.recv.Receive(from, batch)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	return map[string]any{"acks": acks}, nil
}

// checkSender lets records of partition p in only from the primary this
// node knows, or from a newer one (a promotion this node has not applied
// yet), and only while this node is one of p's replicas.
func (c *Cluster) checkSender(from string, p int, version uint64) error {
	st := c.state.Load()
	if st == nil || p >= len(st.Partitions) {
		return fmt.Errorf("no partition %d", p)
	}
	part := st.Partitions[p]
	if version > part.Version {
		return nil
	}
	if from != part.Owner {
		return fmt.Errorf("%s is not the primary of partition %d (%s is, at version %d)", from, p, part.Owner, part.Version)
	}
	if !slices.Contains(part.Replicas, c.cfg.Name) {
		return fmt.Errorf("%s is not a replica of partition %d", c.cfg.Name, p)
	}
	return nil
}

// applyReceived writes records logged here into the copies; a failure
// means the copy is unusable, so the stream stops and it is seeded again.
func (c *Cluster) applyReceived(p int, entries [][]byte) {
	if err := c.rt.ApplyReplicated(p, entries); err != nil {
		c.log.Error("cannot apply replicated records; the copy will be seeded again", "partition", p, "err", err)
		c.recv.Stop(p)
	}
}

// PartitionSnapshot streams a page-identical copy of partition p to
// replica to, which then follows p's records from here: it is registered
// first, so every commit after the snapshot began reaches it.
func (c *Cluster) PartitionSnapshot(ctx context.Context, p int, to string, w http.ResponseWriter) error {
	st := c.state.Load()
	if st == nil || p < 0 || p >= len(st.Partitions) {
		return fmt.Errorf("%w: no partition %d", apierr.ErrNotFound, p)
	}
	part := st.Partitions[p]
	if !slices.Contains(part.Replicas, to) || to == c.cfg.Name {
		return fmt.Errorf("%w: %s is not a replica of partition %d", apierr.ErrConflict, to, p)
	}
	if err := c.fenceErr(p); err != nil {
		return err
	}
	s := &c.streams[p]
	s.mu.Lock()
	if s.followers == nil {
		s.followers = map[string]uint64{}
	}
	s.gen++
	s.followers[to] = s.gen
	delete(s.doubt, to) // seeded from this copy: it gets what it missed
	c.ship.Resume(to, p)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("X-Dura-Partition-Version", strconv.FormatUint(part.Version, 10))
	return c.rt.SnapshotPartition(ctx, p, w)
}
