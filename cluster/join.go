package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

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
		c.applyLocal(replication.Command{Kind: replication.CmdBootstrap, Ring: c.cfg.Ring, Replication: c.cfg.Replication})
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
	c.tendReplicas(c.raft.State())
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
		leader, ok := c.leader()
		if !ok {
			return fmt.Errorf("%w: no known leader", apierr.ErrOwnerUnavailable)
		}
		_, err := c.peers.Call(ctx, leader, http.MethodPost, "/v1/cluster/members/"+url.PathEscape(name)+"/remove?force=true", nil)
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
	c.log.Warn("member removed; each of its partitions went to an in-sync replica where one existed, else empty to its new owner", "member", name)
	return nil
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
			c.log.Info("left the cluster: every partition handed off")
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
