package node

import (
	"context"

	"github.com/dura-dev/dura/replication/nodedb"
	"github.com/dura-dev/dura/rpc"
)

// Coordinator is the cluster a runtime belongs to, as the runtime asks
// it things; package cluster implements it. A runtime without one is a
// lone node that serves every partition.
type Coordinator interface {
	// Fence lets an event of partition p run now, or says why not
	// (OWNER_UNAVAILABLE). It is checked while the object is held.
	Fence(p int) error
	// Lease is done once this node has lost touch with the cluster for
	// longer than its lease: another node may serve its objects soon, so
	// events still running then are cancelled (their calls out stop).
	Lease() context.Context
	// Owns reports whether the committed state gives partition p to this
	// node, ready (lease aside).
	Owns(p int) bool
	// Replicas are the members holding partition p, primary first.
	Replicas(p int) []string
	// Info describes the cluster for /v1/cluster.
	Info() rpc.ClusterInfo
	// Ready says why this node cannot serve yet, or nil.
	Ready() error
	// ListObjects merges every member's share of a listing, after the raw
	// key after.
	ListObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error)
}

// AttachCluster makes rt one node of a cluster, before Start: events run
// only where c's fence lets them, listings and /v1/cluster come from c,
// and the alarm schedule is the replicated one, whose timers the cluster
// arms (ArmAlarm) for the partitions this node owns.
func (rt *Runtime) AttachCluster(c Coordinator, schedule AlarmSchedule) {
	rt.cluster = c
	rt.schedule = schedule
	rt.replicated = true
	rt.SetFence(c.Fence)
}

// Partitions is the partition count this runtime places objects with.
func (rt *Runtime) Partitions() int { return rt.cfg.Partitions }

// DataDir is the runtime's data directory.
func (rt *Runtime) DataDir() string { return rt.cfg.DataDir }

// MaxObjectBytes is the size limit of one object's database.
func (rt *Runtime) MaxObjectBytes() int64 { return rt.cfg.MaxObjectBytes }

// ArmAlarm sets (or moves) the timer of a committed alarm on this node.
func (rt *Runtime) ArmAlarm(a nodedb.Alarm) {
	rt.timers.set(a)
	rt.metrics.alarmsScheduled.Set(float64(rt.timers.len()))
}

// DisarmAlarm drops the timer of an object's alarm on this node.
func (rt *Runtime) DisarmAlarm(objectID string) {
	rt.timers.remove(objectID)
	rt.metrics.alarmsScheduled.Set(float64(rt.timers.len()))
}

// AppliedHere reports whether this node already committed a change of
// a's object newer than this one (and armed it), so a late notice of an
// older change must not re-arm the timer.
func (rt *Runtime) AppliedHere(a nodedb.Alarm, deleted bool) bool { return rt.appliedHere(a, deleted) }

// LocalObjects lists this node's catalog after the raw key after (its
// share of a cluster listing).
func (rt *Runtime) LocalObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error) {
	return rt.localObjects(ctx, class, after, limit)
}
