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
	for _, v := range rt.reserveOpenSlot() {
		rt.closeLater(v)
	}
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
	if isNew {
		rt.recordNew(inst.ref)
	}
	rt.metrics.activations.Inc()
	rt.metrics.activationSeconds.Observe(rt.now().Sub(start).Seconds())
	return nil
}

// reserveOpenSlot counts one more open database and picks least recently
// used idle objects to close so the open files stay under the cap. The
// caller closes the returned stores outside the lock.
func (rt *Runtime) reserveOpenSlot() []*objectstore.Store {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.open++
	limit := rt.cfg.MaxOpenFiles / FilesPerObject
	var victims []*objectstore.Store
	for e := rt.lru.Back(); e != nil && rt.open > limit; {
		prev := e.Prev()
		inst := e.Value.(*instance)
		if inst.refs == 0 && inst.store != nil {
			victims = append(victims, rt.evictLocked(inst))
		}
		e = prev
	}
	rt.metrics.openDatabases.Set(float64(rt.open))
	return victims
}

func (rt *Runtime) releaseOpenSlot() {
	rt.mu.Lock()
	rt.open--
	rt.metrics.openDatabases.Set(float64(rt.open))
	rt.mu.Unlock()
}

// closeLater hands an evicted store to the closer, so the event that
// needed its slot does not wait for its checkpoint; when the closer is
// behind, the caller closes it itself.
func (rt *Runtime) closeLater(s *objectstore.Store) {
	select {
	case rt.closeQ <- s:
	default:
		rt.closeStore(s)
	}
}

// closer closes evicted stores until stop, then drains the queue.
func (rt *Runtime) closer(stop <-chan struct{}) {
	for {
		select {
		case s := <-rt.closeQ:
			rt.closeStore(s)
		case <-stop:
			for {
				select {
				case s := <-rt.closeQ:
					rt.closeStore(s)
				default:
					return
				}
			}
		}
	}
}

// evictLocked forgets an idle instance and returns its store to close.
func (rt *Runtime) evictLocked(inst *instance) *objectstore.Store {
	s := inst.store
	inst.store, inst.obj, inst.state = nil, nil, nil
	rt.lru.Remove(inst.elem)
	inst.elem = nil
	delete(rt.objects, inst.ref.id)
	rt.open--
	rt.metrics.evictions.Inc()
	rt.metrics.activeObjects.Set(float64(len(rt.objects)))
	rt.metrics.openDatabases.Set(float64(rt.open))
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
