package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

// followReplicas keeps this node's copies in step with the replica sets
// (loop only): it seeds the partitions it is a replica of but not in
// sync with, readies those it was promoted to serve, and sets aside the
// copies it no longer holds for anyone.
func (c *Cluster) followReplicas(st *replication.ClusterState) {
	if c.ship == nil || st.Replication.Copies() < 2 {
		return
	}
	if c.dataMissing(st) != nil {
		return // first the cluster records the new data directory (reincarnate)
	}
	me := c.cfg.Name
	if !c.copiesFound {
		// After a restart: the partitions this node holds files of
		// without being their primary are replicas' copies.
		c.copiesFound = true
		for p, part := range st.Partitions {
			if _, err := os.Stat(c.rt.PartitionDir(p)); err == nil && part.Owner != me {
				c.replicaCopy[p].Store(true)
			}
		}
	}
	for p, part := range st.Partitions {
		replica := part.Owner != me && part.Owner != "" && slices.Contains(part.Replicas, me)
		switch {
		case part.Owner == me && c.replicaCopy[p].Load():
			c.startPromotion(p)
		case replica && !slices.Contains(part.InSync, me) && part.Target == "" && !c.seeding[p].Load():
			if c.seeds.Load() >= maxSeeds {
				continue // the others wait for the next look
			}
			c.seeding[p].Store(true)
			c.seeds.Add(1)
			c.wg.Add(1)
			go func(p int, owner string) {
				defer c.wg.Done()
				// The loop starts the next seeding waiting for a slot now,
				// not at its next tick: a returning node seeds hundreds.
				defer c.poke()
				defer c.seeds.Add(-1)
				defer c.seeding[p].Store(false)
				if err := c.seed(p, owner); err != nil {
					lvl, n := c.pullWarns.Level(owner)
					c.log.Log(context.Background(), lvl, "seeding a replica failed; will retry", "partition", p, "from", owner, "err", err, "failed_since_warn", n)
				}
			}(p, part.Owner)
		case !replica && part.Owner != me && c.replicaCopy[p].Load() && !c.seeding[p].Load():
			c.recv.Stop(p)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.rt.DropReplica(ctx, p)
			cancel()
			if err != nil {
				c.log.Error("cannot drop a replica copy no longer needed", "partition", p, "err", err)
				continue
			}
			c.replicaCopy[p].Store(false)
			c.log.Info("replica copy dropped: this node no longer holds the partition", "partition", p)
		}
	}
}

// maxSeeds bounds the seedings a node runs at once: a new cluster seeds
// every partition's replicas together, and replicas busy installing
// snapshots acknowledge records late enough to be dropped from in-sync
// sets, which starts more seedings.
const maxSeeds = 4

// startPromotion readies the copy of partition p this node was promoted
// to serve; the fence refuses p until it is done.
func (c *Cluster) startPromotion(p int) {
	if c.installing[p].Swap(true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.installing[p].Store(false)
		c.recv.Stop(p)
		c.streams[p].forgetFollowers()
		if err := c.rt.PromoteReplica(p); err != nil {
			c.log.Error("cannot ready a promoted replica; will retry", "partition", p, "err", err)
			return
		}
		c.replicaCopy[p].Store(false)
		c.log.Info("partition promoted here: serving it from this node's copy", "partition", p)
		c.poke()
	}()
}

// seed makes this node's copy of partition p the primary's: it follows
// p's records (held), fetches a snapshot, installs it with the records
// held meanwhile, then asks to enter the in-sync set.
func (c *Cluster) seed(p int, owner string) error {
	st := c.state.Load()
	m := st.Members[owner]
	if m == nil {
		return fmt.Errorf("primary %q unknown", owner)
	}
	start := time.Now()
	c.recv.Expect(p, owner)
	dir, err := c.fetchSnapshot(p, rpc.Peer{Name: owner, Addr: m.Raft})
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		c.recv.Stop(p)
		return err
	}
	fetched := time.Now()
	c.replicaCopy[p].Store(true)
	err = c.recv.Release(p, func(held [][]byte, first bool) error {
		if first {
			return c.rt.InstallReplica(p, dir, held)
		}
		return c.rt.CatchUpReplica(p, held)
	})
	if err != nil {
		return err
	}
	installed := time.Now()
	if h := c.hooks.Load(); h != nil && h.BeforeAdmit != nil {
		h.BeforeAdmit(p)
	}
	// Only the primary knows whether every record since the snapshot
	// reached this copy: it admits it into the in-sync set, or refuses.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := "/v1/internal/partitions/" + strconv.Itoa(p) + "/in-sync?member=" + url.QueryEscape(c.cfg.Name)
	if _, err := c.peers.Call(ctx, rpc.Peer{Name: owner, Addr: m.Raft}, http.MethodPost, path, nil); err != nil {
		c.recv.Stop(p)
		return fmt.Errorf("enter the in-sync set: %w", err)
	}
	for {
		// In the set, even if the partition moved on meanwhile (the old
		// primary vouched for this copy as it drained): this stream
		// follows the new primary's records.
		part := c.state.Load().Partitions[p]
		if slices.Contains(part.InSync, c.cfg.Name) {
			break
		}
		if part.Owner != owner {
			c.recv.Stop(p)
			return fmt.Errorf("partition %d moved to %s while it was seeded", p, part.Owner)
		}
		changed := c.Changed()
		select {
		case <-changed:
		case <-ctx.Done():
			c.recv.Stop(p)
			return fmt.Errorf("enter the in-sync set: admitted by %s, not applied here in time", owner)
		}
	}
	c.metrics.expands.Inc()
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	c.log.Info("replica in sync", "partition", p, "primary", owner, "took", ms(time.Since(start)),
		"snapshot", ms(fetched.Sub(start)), "install", ms(installed.Sub(fetched)), "admission", ms(time.Since(installed)))
	return nil
}

// fetchSnapshot receives partition p's snapshot from its primary into a
// new directory under the data directory, checking each file.
func (c *Cluster) fetchSnapshot(p int, from rpc.Peer) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ctx, stall := withStallGuard(ctx)
	defer stall.stop()
	path := "http://" + from.Addr + "/v1/internal/partitions/" + strconv.Itoa(p) + "/snapshot?to=" + url.QueryEscape(c.cfg.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.peers.Do(from, req)
	if err != nil {
		return "", stalled(ctx, err)
	}
	defer resp.Body.Close()
	dir, err := os.MkdirTemp(c.rt.DataDir(), ".seed-")
	if err != nil {
		return "", err
	}
	err = receiveFiles(stall.wrap(resp.Body), dir, c.rt.MaxObjectBytes(), objectstore.QuickCheck)
	if errors.Is(err, errEndedEarly) {
		return dir, fmt.Errorf("snapshot of partition %d ended early", p)
	}
	return dir, stalled(ctx, err)
}

// tendReplicas is the leader's share of replication, each loop: fail
// over dead primaries, record lost disks' new directories, remove members
// dead too long, and move primaries back where the ring puts them.
func (c *Cluster) tendReplicas(st *replication.ClusterState) {
	if c.ship == nil {
		return
	}
	now := time.Now()
	alive := map[string]bool{}
	for _, p := range c.ml.Peers() {
		if p.State == "alive" {
			alive[p.Name] = true
		}
	}
	for name := range st.Members {
		if alive[name] {
			delete(c.deadSince, name)
		} else if _, ok := c.deadSince[name]; !ok {
			c.deadSince[name] = now
		}
	}
	if c.leaderSince.IsZero() {
		c.leaderSince = now
	}
	c.failover(st, alive, now)
	c.reincarnate(st)
	c.replaceDead(st, now)
	c.moveBack(st, alive, now)
}

// failover promotes an in-sync replica of every partition whose primary
// is gone (leader only; see primaryGone): by then the old primary, out of
// touch with Raft past its lease, has stopped serving, and it could not
// acknowledge a write the new one lacks anyway (it waits for every
// in-sync replica, and can take one out only by a compare-and-set the
// promotion defeats). All promotions go in one command.
func (c *Cluster) failover(st *replication.ClusterState, alive map[string]bool, now time.Time) {
	var promos []replication.Promotion
	gone := map[string]string{} // primary -> why it is gone ("" if it is not), asked once each
	for p, part := range st.Partitions {
		if part.Owner == "" || part.Owner == c.cfg.Name {
			continue
		}
		why, ok := gone[part.Owner]
		if !ok {
			why = c.primaryGone(st, part.Owner, now)
			gone[part.Owner] = why
		}
		if why == "" {
			continue
		}
		for _, m := range part.InSync {
			if m != part.Owner && c.canServe(st, m, alive, now) {
				promos = append(promos, replication.Promotion{Partition: p, Version: part.Version, Owner: m})
				break
			}
		}
	}
	if len(promos) == 0 {
		return
	}
	if err := c.raft.Apply(replication.Command{Kind: replication.CmdPromote, Promote: promos}, 5*time.Second); err != nil {
		c.log.Warn("failover refused", "partitions", len(promos), "err", err)
		return
	}
	var dead []string
	for m, why := range gone {
		if why != "" {
			dead = append(dead, m+" ("+why+")")
		}
	}
	slices.Sort(dead)
	c.log.Warn("failover: in-sync replicas promoted in place of dead primaries", "partitions", len(promos), "primaries", dead)
}

// canServe says whether member m could take over as a primary now: alive
// in gossip, active with its data, and not out of touch with this leader
// (its heartbeats failing with no append accepted for half a lease: it
// would find its own lease run out and serve nothing).
func (c *Cluster) canServe(st *replication.ClusterState, m string, alive map[string]bool, now time.Time) bool {
	mem := st.Members[m]
	if !alive[m] || mem == nil || mem.Status != replication.Active || mem.DataLost {
		return false
	}
	last, failing := c.raft.FollowerSilentSince(m)
	return !failing || now.Sub(last) < c.lease()/2
}

// primaryGone says why owner can no longer be serving, or "" (leader
// only): it came back without its data, or its lease and a quarter more
// have passed since the last heartbeat it answered (or, failing that,
// since it was seen dead in gossip, unless it answered one within that
// time), and since this node began to lead.
// The quarter: the old primary may have heard from the leader a little
// after the leader last heard from it, and its events still running when
// its lease ran out are cancelled only within an eighth of the lease
// (watchContact); promoting at once would let an alarm calling out
// overlap its successor's first events.
func (c *Cluster) primaryGone(st *replication.ClusterState, owner string, now time.Time) string {
	f := contactFacts{leaderSince: c.leaderSince, heard: c.raft.FollowerHeardAt(owner)}
	if m := st.Members[owner]; m != nil {
		f.dataLost = m.DataLost
	}
	f.silentSince, f.failing = c.raft.FollowerSilentSince(owner)
	f.deadSince, f.dead = c.deadSince[owner]
	return f.gone(now, c.lease()+c.lease()/4)
}

// contactFacts is what the leader knows of a primary's contact with it.
type contactFacts struct {
	dataLost    bool
	leaderSince time.Time // when this node began to lead
	failing     bool      // its Raft heartbeats fail...
	silentSince time.Time // ...and it last answered one then
	heard       time.Time // when it last accepted an append (zero: never)
	dead        bool      // gossip calls it dead...
	deadSince   time.Time // ...since then
}

// gone is primaryGone's rule, wait being the lease and a quarter.
func (f contactFacts) gone(now time.Time, wait time.Duration) string {
	if f.dataLost {
		return "lost its data" // it serves nothing: no need to wait
	}
	if now.Sub(f.leaderSince) < wait {
		return ""
	}
	if f.failing {
		if d := now.Sub(f.silentSince); d > wait {
			return "no Raft heartbeat answered for " + d.Round(time.Millisecond).String()
		}
		return ""
	}
	if !f.heard.IsZero() && now.Sub(f.heard) <= wait {
		// It accepts this leader's heartbeats, so its lease runs and it
		// may be serving, whatever gossip says: after a network cut
		// heals, gossip can call a member dead for seconds after Raft
		// reached it again.
		return ""
	}
	if f.dead && now.Sub(f.deadSince) > wait {
		return "dead in gossip for " + now.Sub(f.deadSince).Round(time.Millisecond).String()
	}
	return ""
}

// reincarnate lets members that came back without their data take the
// data directory they brought once their partitions failed over (leader
// only): they are then seeded like new replicas.
func (c *Cluster) reincarnate(st *replication.ClusterState) {
	for _, p := range c.ml.Peers() {
		m := st.Members[p.Name]
		if m == nil || !m.DataLost || p.State != "alive" || p.Meta.Incarnation == "" || p.Meta.Incarnation == m.Incarnation {
			continue
		}
		c.applyLocal(replication.Command{Kind: replication.CmdReincarnate, Member: replication.Member{Name: p.Name, Incarnation: p.Meta.Incarnation}})
	}
}

// replaceDead removes members dead for longer than DeadMemberTimeout
// (leader only), as an operator's forced removal would, so their replica
// sets move to live members. Only with two copies or more, and only once
// none of its partitions still relies on it alone.
func (c *Cluster) replaceDead(st *replication.ClusterState, now time.Time) {
	if st.Replication.Copies() < 2 {
		return
	}
	for name, since := range c.deadSince {
		m := st.Members[name]
		c.mu.Lock()
		busy, timeout := c.removing[name], c.cfg.DeadMemberTimeout
		c.mu.Unlock()
		if m == nil || m.Status != replication.Active || now.Sub(since) < timeout || busy || name == c.cfg.Name {
			continue
		}
		sole := false
		for _, p := range st.Partitions {
			if p.Owner == name && !slices.ContainsFunc(p.InSync, func(x string) bool { return x != name }) {
				sole = true
				break
			}
		}
		if sole {
			continue // its data is nowhere else: wait for it, or an operator
		}
		c.mu.Lock()
		c.removing[name] = true
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := c.RemoveMember(ctx, name)
			c.mu.Lock()
			delete(c.removing, name)
			c.mu.Unlock()
			if err != nil {
				c.log.Warn("cannot remove a member dead past --dead-member-timeout; will retry", "member", name, "err", err)
				return
			}
			c.log.Warn("member removed: dead past --dead-member-timeout; its replica sets moved to live members", "member", name, "dead_for", time.Since(since).Round(time.Second))
		}()
	}
}

// SetDeadMemberTimeout changes DeadMemberTimeout (tests).
func (c *Cluster) SetDeadMemberTimeout(d time.Duration) {
	c.mu.Lock()
	c.cfg.DeadMemberTimeout = d
	c.mu.Unlock()
}

// maxMovesPerRound bounds the primaries moved at once, movePace apart.
const (
	maxMovesPerRound = 64
	movePace         = time.Second
)

// moveBack hands partitions to the primaries the ring gives them once
// those are in-sync replicas (a node that joined, or returned after a
// failover), movePace apart (leader only); a leaving member's
// partitions go at once, all of them. Each is a handoff whose target has
// the data already: only a drain and a switch.
func (c *Cluster) moveBack(st *replication.ClusterState, alive map[string]bool, now time.Time) {
	if st.Replication.Copies() < 2 {
		return
	}
	paced := now.Sub(c.lastBalance) < movePace
	leaving := func(name string) bool { m := st.Members[name]; return m != nil && m.Status == replication.Leaving }
	if paced {
		// Between rounds only a leaver's partitions move.
		someLeaving := false
		for name := range st.Members {
			someLeaving = someLeaving || leaving(name)
		}
		if !someLeaving {
			return
		}
	}
	var ring []string // the ring's placement, for partitions recorded before homes
	var moves []replication.Move
	counted := 0 // moves that are not a leaver's, bounded per round
	for p, part := range st.Partitions {
		urgent := leaving(part.Owner)
		if !urgent && (paced || counted >= maxMovesPerRound) {
			continue
		}
		w := st.PendingHome(part)
		if part.Home == "" && part.Owner != "" {
			if ring == nil {
				var err error
				if ring, err = assignPartitions(st.ActiveMembers(), st.Ring); err != nil || len(ring) != len(st.Partitions) {
					return
				}
			}
			w = ring[p]
		}
		if w != "" && w != part.Owner && part.Ready() && alive[w] && slices.Contains(part.InSync, w) {
			moves = append(moves, replication.Move{Partition: p, Version: part.Version, Target: w})
			if !urgent {
				counted++
			}
		}
	}
	if !paced {
		c.lastBalance = now
	}
	if len(moves) == 0 {
		return
	}
	if err := c.raft.Apply(replication.Command{Kind: replication.CmdMove, Moves: moves}, 5*time.Second); err != nil {
		c.log.Debug("moving primaries back refused", "partitions", len(moves), "err", err)
		return
	}
	c.log.Info("moving primaries back to the members the ring gives them", "partitions", len(moves))
}
