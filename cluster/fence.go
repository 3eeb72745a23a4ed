package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

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
		gen := c.contact.pending()
		if c.raft.Barrier(2*time.Second) == nil {
			c.setCaughtUp(gen)
		}
		return
	}
	if c.catchUp == 0 {
		c.catchUpGen = c.contact.pending()
		leader, ok := c.leader()
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		b, err := c.peers.Call(ctx, leader, http.MethodGet, "/v1/internal/commit", nil)
		var resp struct{ Index uint64 }
		if err != nil || json.Unmarshal(b, &resp) != nil || resp.Index == 0 {
			return
		}
		c.catchUp = resp.Index
	}
	if c.raft.AppliedIndex() >= c.catchUp {
		c.setCaughtUp(c.catchUpGen)
	}
}

// setCaughtUp lets this node serve (loop only); gen is the count of
// contact lapses the catch-up covers.
func (c *Cluster) setCaughtUp(gen uint64) {
	c.contact.caughtUp(gen)
	c.log.Info("caught up with the cluster", "applied_index", c.raft.AppliedIndex())
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

// lease is how long a node keeps serving without hearing from a Raft
// leader; a forced removal waits twice as long before reassigning.
func (c *Cluster) lease() time.Duration { return c.cfg.Timing.Lease }

// Fence lets an event run only on a partition this node owns, ready, and
// only while this node is in touch with the Raft majority: a node cut off
// for longer than the lease stops serving, so a forced removal (which
// waits the lease out) never leaves two nodes serving one partition.
func (c *Cluster) Fence(p int) error {
	return apierr.NotExecuted(c.fenceErr(p))
}

func (c *Cluster) fenceErr(p int) error {
	if err := c.inTouch(); err != nil {
		return err
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
	if c.replicaCopy[p].Load() {
		// Promoted, not yet readied (startPromotion): the replica side may
		// still be writing records into the files.
		return fmt.Errorf("%w: partition %d is being promoted on node %s", apierr.ErrOwnerUnavailable, p, c.cfg.Name)
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
	need := st.WriteQuorum()
	for p, part := range st.Partitions {
		if part.Target == c.cfg.Name || part.Owner == c.cfg.Name && part.Target != "" {
			return fmt.Errorf("%w: partition %d is moving", apierr.ErrOwnerUnavailable, p)
		}
		if st.PendingHome(part) == c.cfg.Name {
			return fmt.Errorf("%w: partition %d is on its way here (its primary moves once this node's copy is in sync)", apierr.ErrOwnerUnavailable, p)
		}
		if part.Owner == c.cfg.Name && len(part.InSync) < need {
			return fmt.Errorf("%w: partition %d has %d in-sync replicas, writes need %d (its replicas are being seeded)", apierr.ErrOwnerUnavailable, p, len(part.InSync), need)
		}
	}
	return nil
}

// Owns reports whether the committed state gives partition p to this
// node and it is not moving away (lease aside).
func (c *Cluster) Owns(p int) bool {
	st := c.state.Load()
	return st != nil && p < len(st.Partitions) && st.Partitions[p].Owner == c.cfg.Name && st.Partitions[p].Target == ""
}
