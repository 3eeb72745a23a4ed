package node

import (
	"context"
	"fmt"
	"iter"
	"path/filepath"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/objectstore"
)

// activate opens the object's database and runs its constructor in an
// event of its own.
func (rt *Runtime) activate(ctx context.Context, inst *instance) error {
	ctor, ok := rt.class(inst.ref.class)
	if !ok {
		return fmt.Errorf("%w: %q", apierr.ErrUnknownClass, inst.ref.class)
	}
	start := rt.now()
	rt.reserveOpenSlot()
	path := rt.path(inst.ref)
	isNew := false // decided inside the event: the file records its identity once
	store, err := objectstore.Open(objectstore.Config{
		Path:             path,
		MaxBytes:         rt.cfg.MaxObjectBytes,
		StatementTimeout: rt.cfg.StatementTimeout,
		Capture:          rt.nlog != nil,
		StatsBudget:      rt.statsBudget,
	})
	if err != nil {
		rt.releaseOpenSlot()
		return err
	}
	inst.store = store
	inst.state = &State{rt: rt, inst: inst}
	err = rt.event(ctx, inst, func(inst *instance) error {
		has, err := inst.store.HasIdentity()
		if err != nil {
			return err
		}
		if !has {
			if err := inst.store.SetIdentity(inst.ref.class, inst.ref.name); err != nil {
				return err
			}
			isNew = true
		}
		obj, err := ctor(inst.state)
		if err != nil {
			return err
		}
		if obj == nil {
			return fmt.Errorf("%w: constructor of %q returned no object", apierr.ErrInternal, inst.ref.class)
		}
		inst.obj = obj
		_, handles := obj.(Alarmer)
		rt.alarmHandlers.Store(inst.ref.class, handles)
		return nil
	})
	if err != nil {
		inst.store, inst.obj, inst.state = nil, nil, nil
		rt.closeStore(store)
		rt.releaseOpenSlot()
		return fmt.Errorf("activate %s/%s: %w", inst.ref.class, inst.ref.name, err)
	}
	rt.opened(inst)
	if isNew {
		rt.recordNew(inst.ref)
	}
	rt.metrics.activations.Inc()
	rt.metrics.activationSeconds.Observe(rt.now().Sub(start).Seconds())
	return nil
}

// reserveOpenSlot counts one more open database and has least recently
// used idle objects park theirs (close it and stay live) so the open
// files stay under the cap; the parking happens outside the lock, by the
// closers. The caller opens the database, then calls opened (or
// releaseOpenSlot if it failed).
func (rt *Runtime) reserveOpenSlot() {
	rt.mu.Lock()
	rt.open++
	limit := rt.cfg.MaxOpenFiles / FilesPerObject
	var jobs []closeJob
	for e := rt.openLRU.Back(); e != nil && rt.open-rt.parking > limit; e = e.Prev() {
		if inst := e.Value.(*instance); inst.refs == 0 {
			inst.refs++ // pinned until parked: not evicted, not picked again
			rt.parking++
			jobs = append(jobs, closeJob{park: inst})
		}
	}
	rt.openGaugeLocked()
	rt.mu.Unlock()
	for _, j := range jobs {
		rt.closeLater(j)
	}
}

// opened records that inst's database is open in the slot reserved for
// it (object held).
func (rt *Runtime) opened(inst *instance) {
	rt.mu.Lock()
	inst.openElem = rt.openLRU.PushFront(inst)
	rt.mu.Unlock()
}

func (rt *Runtime) releaseOpenSlot() {
	rt.mu.Lock()
	rt.open--
	rt.openGaugeLocked()
	rt.mu.Unlock()
}

// closedLocked records that inst's database was closed (or parked) and
// gives its slot back. rt.mu held.
func (rt *Runtime) closedLocked(inst *instance) {
	if inst.openElem == nil {
		return
	}
	rt.openLRU.Remove(inst.openElem)
	inst.openElem = nil
	rt.open--
	rt.openGaugeLocked()
}

// closed is closedLocked for a caller without rt.mu (object held).
func (rt *Runtime) closed(inst *instance) {
	rt.mu.Lock()
	rt.closedLocked(inst)
	rt.mu.Unlock()
}

// openGaugeLocked sets the open-databases gauge: those open and not being
// parked. rt.mu held.
func (rt *Runtime) openGaugeLocked() {
	rt.metrics.openDatabases.Set(float64(rt.open - rt.parking))
}

// closeJob is work for the closers: an evicted store to close, or a live
// object (pinned) whose store to park.
type closeJob struct {
	store *objectstore.Store
	park  *instance
}

// do does a job; wait says whether a park may wait for an event holding
// the object (the closers may; a caller holding an object of its own
// must not, or two objects could each wait for the other).
func (rt *Runtime) do(j closeJob, wait bool) {
	if j.park != nil {
		rt.park(j.park, wait)
		return
	}
	rt.closeStore(j.store)
}

// closeLater hands a job to the closers, so the event that needed its
// slot does not wait for a checkpoint; when they are behind, the caller
// does it itself.
func (rt *Runtime) closeLater(j closeJob) {
	select {
	case rt.closeQ <- j:
	default:
		rt.do(j, false)
	}
}

// closer does close jobs until stop, then drains the queue.
func (rt *Runtime) closer(stop <-chan struct{}) {
	for {
		select {
		case j := <-rt.closeQ:
			rt.do(j, true)
		case <-stop:
			rt.drainCloses()
			return
		}
	}
}

// drainCloses does the queued close jobs.
func (rt *Runtime) drainCloses() {
	for {
		select {
		case j := <-rt.closeQ:
			rt.do(j, true)
		default:
			return
		}
	}
}

// park closes the database of a live object picked by reserveOpenSlot
// (pinned). The closers wait for an event holding the object to end;
// a caller parking in their place (wait false) does not: the object
// is in use after all, and keeps its database.
func (rt *Runtime) park(inst *instance, wait bool) {
	parked, held := false, wait
	if wait {
		inst.sem <- struct{}{}
	} else {
		held = tryAcquire(inst.sem)
	}
	if held {
		if inst.store != nil && !inst.store.Parked() {
			if err := rt.parkStore(inst.store); err != nil {
				rt.log.Warn("idle object kept its database open", "class", inst.ref.class, "object", inst.ref.name, "err", err)
			} else {
				parked = true
				rt.metrics.parks.Inc()
			}
		}
		<-inst.sem
	}
	rt.mu.Lock()
	inst.refs--
	rt.parking--
	if parked {
		rt.closedLocked(inst)
	}
	rt.openGaugeLocked()
	rt.mu.Unlock()
}

func tryAcquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// unpark opens the database of a parked object again (object held).
func (rt *Runtime) unpark(inst *instance) error {
	rt.reserveOpenSlot()
	if err := inst.store.Unpark(); err != nil {
		rt.releaseOpenSlot()
		return fmt.Errorf("reopen %s/%s: %w", inst.ref.class, inst.ref.name, err)
	}
	rt.opened(inst)
	return nil
}

// evictLocked forgets an idle instance (open or parked) and returns its
// store to close.
func (rt *Runtime) evictLocked(inst *instance) *objectstore.Store {
	s := inst.store
	inst.store, inst.obj, inst.state = nil, nil, nil
	rt.lru.Remove(inst.elem)
	inst.elem = nil
	delete(rt.objects, inst.ref.id)
	rt.closedLocked(inst)
	rt.metrics.evictions.Inc()
	rt.metrics.activeObjects.Set(float64(len(rt.objects)))
	return s
}

// janitor closes objects idle past the idle timeout.
func (rt *Runtime) janitor() {
	every := rt.cfg.IdleTimeout / 4
	if every > 30*time.Second {
		every = 30 * time.Second
	}
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var quiet <-chan time.Time // ticks of releaseIdle; nil when off
	if rt.cfg.ReleaseAfter > 0 {
		t := time.NewTicker(max(rt.cfg.ReleaseAfter/2, 10*time.Millisecond))
		defer t.Stop()
		quiet = t.C
	}
	lastWalk := time.Time{}
	for {
		select {
		case <-rt.stop:
			return
		case <-quiet:
			rt.releaseIdle()
			continue
		case <-tick.C:
		}
		rt.evictIdle()
		rt.SyncReplicas()
		rt.trimLog()
		if time.Since(lastWalk) > time.Minute {
			lastWalk = time.Now()
			rt.metrics.storageBytes.Set(float64(fsutil.DirBytes(filepath.Join(rt.cfg.DataDir, "partitions"))))
		}
	}
}

// releaseIdle has the objects idle past ReleaseAfter give back their SQLite
// caches (objectstore.Store.Release). Each is pinned meanwhile so it is not
// evicted, and skipped if an event holds it.
func (rt *Runtime) releaseIdle() {
	cutoff := rt.now().Add(-rt.cfg.ReleaseAfter)
	type candidate struct {
		inst     *instance
		lastUsed time.Time
	}
	var quiet []candidate
	rt.mu.Lock()
	for inst := range rt.idleLocked(cutoff) {
		if inst.refs == 0 && inst.store != nil && !inst.released {
			inst.refs++
			quiet = append(quiet, candidate{inst, inst.lastUsed})
		}
	}
	rt.mu.Unlock()
	n := 0
	for _, c := range quiet {
		released := false
		select {
		case c.inst.sem <- struct{}{}:
			if c.inst.store != nil {
				if err := c.inst.store.Release(); err != nil {
					rt.log.Warn("idle object kept its caches", "class", c.inst.ref.class, "object", c.inst.ref.name, "err", err)
				} else {
					released = true
				}
			}
			<-c.inst.sem
		default: // an event has it: not idle after all
		}
		rt.mu.Lock()
		c.inst.refs--
		// Used since it was picked: its caches may be back.
		c.inst.released = released && c.inst.lastUsed.Equal(c.lastUsed)
		rt.mu.Unlock()
		if released {
			n++
		}
	}
	rt.metrics.releases.Add(float64(n))
	if n > 0 {
		objectstore.Trim()
	}
}

// idleLocked yields the instances last used at or before cutoff, least
// recently used first; the loop body may evict the one it is given.
// rt.mu held.
func (rt *Runtime) idleLocked(cutoff time.Time) iter.Seq[*instance] {
	return func(yield func(*instance) bool) {
		for e := rt.lru.Back(); e != nil; {
			prev := e.Prev()
			inst := e.Value.(*instance)
			if inst.lastUsed.After(cutoff) {
				return // the rest were used more recently
			}
			if !yield(inst) {
				return
			}
			e = prev
		}
	}
}

func (rt *Runtime) evictIdle() {
	cutoff := rt.now().Add(-rt.cfg.IdleTimeout)
	rt.mu.Lock()
	var victims []*objectstore.Store
	for inst := range rt.idleLocked(cutoff) {
		if inst.refs == 0 && inst.store != nil {
			victims = append(victims, rt.evictLocked(inst))
		}
	}
	rt.mu.Unlock()
	for _, s := range victims {
		rt.closeStore(s)
	}
}
