package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
)

// contactGuard notices when this node went longer than its lease without
// hearing from a Raft leader, even a silence that ended before anyone
// looked: it compares successive samples of the last contact, which only
// grows. Hearing from the leader again does not mean this node's
// committed state is current: the first heartbeat after a partition heals
// arrives before the entries this node missed, a failover among them, so
// its stale state would still name it the owner of partitions given away
// meanwhile. After such a silence the node serves nothing until it has
// applied what the leader had committed (checkCaughtUp).
type contactGuard struct {
	mu      sync.Mutex
	seen    time.Time // the latest last contact sampled
	gap     time.Duration
	lapses  uint64 // silences longer than the lease seen so far
	cleared uint64 // lapses a completed catch-up covers
}

// observe samples the last contact lc and reports whether a silence
// longer than lease has not been caught up from yet.
func (g *contactGuard) observe(lc time.Time, lease time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if lc.After(g.seen) {
		if d := lc.Sub(g.seen); !g.seen.IsZero() && d > lease {
			g.lapses++
			g.gap = d
		}
		g.seen = lc
	}
	return g.lapses != g.cleared
}

// pending is the count of lapses a catch-up starting now covers.
func (g *contactGuard) pending() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lapses
}

// caughtUp records that a catch-up begun when pending() was upTo ended:
// lapses after it still need one of their own.
func (g *contactGuard) caughtUp(upTo uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cleared = max(g.cleared, upTo)
}

// lastGap is the length of the latest silence longer than the lease.
func (g *contactGuard) lastGap() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gap
}

// inTouch says why this node may not serve or acknowledge now as far as
// its contact with the Raft leader goes: none within the lease, or none
// for longer than the lease since the last catch-up. nil: it may.
func (c *Cluster) inTouch() error {
	lc := c.raft.LastContact()
	if since := time.Since(lc); since > c.lease() {
		c.contact.observe(lc, c.lease())
		return fmt.Errorf("%w: node %s has had no contact with the Raft leader for %s", apierr.ErrOwnerUnavailable, c.cfg.Name, since.Round(time.Millisecond))
	}
	if c.contact.observe(lc, c.lease()) {
		c.poke() // the loop catches up
		return fmt.Errorf("%w: node %s is catching up with the cluster after %s without contact with the Raft leader", apierr.ErrOwnerUnavailable, c.cfg.Name, c.contact.lastGap().Round(time.Millisecond))
	}
	return nil
}

// leaseCtx is the context events of one stretch of contact share.
type leaseCtx struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newLeaseCtx() *leaseCtx {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &leaseCtx{ctx, cancel}
}

// Lease implements node.Coordinator: done (with an OWNER_UNAVAILABLE
// cause) within an eighth of the lease once it ran out. An event starting
// once the node is in touch again gets a new one, even before the
// watcher has made it.
func (c *Cluster) Lease() context.Context {
	l := c.leaseCtx.Load()
	if l.ctx.Err() != nil && c.inTouch() == nil {
		if n := newLeaseCtx(); c.leaseCtx.CompareAndSwap(l, n) {
			return n.ctx
		}
		l = c.leaseCtx.Load()
	}
	return l.ctx
}

// watchContact samples the last contact often enough that a node in
// steady touch never shows a gap longer than the lease between two
// samples (the loop may be busy for longer than that), and cancels the
// events running when the lease runs out: the leader promotes another
// primary a lease after that, and their calls out must have stopped.
func (c *Cluster) watchContact() {
	tick := time.NewTicker(c.lease() / 8)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		lc := c.raft.LastContact()
		if since := time.Since(lc); since > c.lease() {
			if l := c.leaseCtx.Load(); l.ctx.Err() == nil {
				l.cancel(fmt.Errorf("%w: node %s lost touch with the Raft leader %s ago, past its lease: its events stop", apierr.ErrOwnerUnavailable, c.cfg.Name, since.Round(time.Millisecond)))
			}
		} else if l := c.leaseCtx.Load(); l.ctx.Err() != nil {
			c.leaseCtx.CompareAndSwap(l, newLeaseCtx())
		}
		if c.contact.observe(lc, c.lease()) && c.caughtUp.Load() {
			c.poke()
		}
	}
}
