package node

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dura-dev/dura/internal/apierr"
)

// An object whose commit was made here but could not be acknowledged
// (its replicas did not all confirm it and the in-sync set could not be
// changed without them: the outcome is unknown) holds, in this node's
// copy, a write that a new primary may not have. Until the cluster says
// the write is on every in-sync replica after all, or the partition
// leaves this node, no event of the object runs here: a read would show
// the write, and it may never have happened.

// unconfirmed keeps those objects.
type unconfirmed struct {
	n  atomic.Int32 // len(ids), read without the lock on every event
	mu sync.Mutex
	// ids maps each such object to its partition.
	ids map[string]int
}

func (u *unconfirmed) add(ref objectRef) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ids == nil {
		u.ids = map[string]int{}
	}
	u.ids[ref.id] = ref.partition
	u.n.Store(int32(len(u.ids)))
}

func (u *unconfirmed) has(id string) bool {
	if u.n.Load() == 0 {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.ids[id]
	return ok
}

func (u *unconfirmed) remove(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.ids, id)
	u.n.Store(int32(len(u.ids)))
}

// forgetPartition drops partition p's objects: its copy here was replaced
// or set aside, so what it held no longer matters.
func (u *unconfirmed) forgetPartition(p int) {
	if u.n.Load() == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, q := range u.ids {
		if q == p {
			delete(u.ids, id)
		}
	}
	u.n.Store(int32(len(u.ids)))
}

// confirmed says whether events of ref may run (nil), asking the
// replicator to settle a write of it whose outcome is unknown; the error
// did not run the event, so the request may wait and try again.
func (rt *Runtime) confirmed(ref objectRef) error {
	if rt.replicator == nil || !rt.unconfirmed.has(ref.id) {
		return nil
	}
	if err := rt.replicator.Confirm(ref.partition); err != nil {
		return apierr.NotExecuted(fmt.Errorf("%w: object %s/%s has a write on node %s whose outcome is not known yet: %v",
			apierr.ErrOwnerUnavailable, ref.class, ref.name, rt.cfg.NodeName, err))
	}
	rt.unconfirmed.remove(ref.id)
	return nil
}
