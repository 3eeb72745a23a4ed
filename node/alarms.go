package node

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/replication/nodedb"
)

// Alarm retry policy: a failed alarm handler is retried after
// RetryBase << n plus up to 25 % jitter, MaxRetries times.
const (
	RetryBase  = 2 * time.Second
	MaxRetries = 6
)

// checkpoint commits the event so far and opens a new transaction, so
// migrations commit one by one. Inside a savepoint it does nothing: the
// enclosing transaction decides.
func (rt *Runtime) checkpoint(inst *instance) error {
	if inst.store.Depth() > 0 {
		return nil
	}
	if err := rt.commit(inst, inst.ev); err != nil {
		return err
	}
	inst.ev.alarm = nil
	return inst.store.Begin()
}

// deliverAlarm runs a due alarm as an event of its object.
func (rt *Runtime) deliverAlarm(a nodedb.Alarm) {
	rt.bg.Add(1)
	go func() {
		defer rt.bg.Done()
		select {
		case rt.alarmSem <- struct{}{}:
		case <-rt.stop:
			return
		}
		defer func() { <-rt.alarmSem }()
		rt.fireAlarm(a)
	}()
}

func (rt *Runtime) fireAlarm(a nodedb.Alarm) {
	ref, err := rt.ref(a.Class, a.Name)
	if err != nil {
		rt.log.Error("alarm for an object that cannot run", "class", a.Class, "name", a.Name, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	stale, ran := false, false
	fire := func(inst *instance) error {
		ran = true
		cur, ok, err := rt.getAlarm(ref.id)
		if err != nil {
			return err
		}
		if !ok || !cur.At.Equal(a.At) {
			stale = true // deleted or moved since the timer was armed
			return nil
		}
		a = cur
		// Success clears the alarm unless the handler sets a new one.
		inst.ev.alarm = &alarmChange{del: true, fired: a.At}
		h, ok := inst.obj.(Alarmer)
		if !ok {
			return nil
		}
		rt.metrics.alarmLag.Observe(rt.now().Sub(a.At).Seconds())
		return h.Alarm(inst.ev.ctx, AlarmInfo{RetryCount: a.Retry, IsRetry: a.Retry > 0, ScheduledTime: a.Scheduled})
	}
	after := func(inst *instance, err error) {
		if err == nil || stale {
			if err == nil && !stale {
				rt.metrics.alarmsFired.Inc()
			}
			return
		}
		rt.retryAlarm(a, err)
	}
	err = rt.run(ctx, ref, fire, after)
	if err == nil {
		return
	}
	if !ran && (errors.Is(err, apierr.ErrOwnerUnavailable) || errors.Is(err, apierr.ErrDataMissing)) {
		// Refused before it ran (fencing: not yet in touch with the
		// leader after a restart, or the partition moving). The timer was
		// spent: arm it again if the partition is still ours.
		rt.rearmLater(a)
		return
	}
	rt.log.Warn("alarm failed", "class", a.Class, "name", a.Name, "retry", a.Retry, "err", err)
}

// rearmCommitted arms the object's committed alarm again after delay, if
// it still has one: a schedule change failed, and a timer spent on the
// alarm must not leave it unarmed.
func (rt *Runtime) rearmCommitted(id string, delay time.Duration) {
	time.AfterFunc(delay, func() {
		select {
		case <-rt.stop:
			return
		default:
		}
		if cur, ok, err := rt.getAlarm(id); err == nil && ok {
			rt.timers.set(cur)
		}
	})
}

// rearmLater puts a refused alarm back on the timers after a second, if
// this node still owns its partition and the alarm is unchanged.
func (rt *Runtime) rearmLater(a nodedb.Alarm) {
	if rt.cluster == nil {
		return
	}
	time.AfterFunc(time.Second, func() {
		select {
		case <-rt.stop:
			return
		default:
		}
		cur, ok, err := rt.getAlarm(a.ObjectID)
		if err == nil && ok && cur.At.Equal(a.At) && rt.cluster.Owns(a.Partition) {
			rt.timers.set(cur)
		}
	})
}

// retryAlarm reschedules a failed alarm with backoff, or gives up after
// MaxRetries. It runs while the object is held, so no event can change
// the alarm in between.
func (rt *Runtime) retryAlarm(a nodedb.Alarm, cause error) {
	rt.metrics.alarmsFired.Inc()
	if a.Retry >= MaxRetries {
		rt.log.Error("alarm gave up after retries", "class", a.Class, "name", a.Name, "retries", a.Retry, "err", cause)
		if err := rt.schedule.DeleteAlarm(a.ObjectID); err == nil {
			rt.noteRecent(&alarmChange{del: true}, a.ObjectID)
			rt.timers.remove(a.ObjectID)
		} else {
			rt.rearmCommitted(a.ObjectID, RetryBase)
		}
		return
	}
	delay := RetryBase << a.Retry
	delay += time.Duration(rand.Int64N(int64(delay / 4)))
	a.Retry++
	a.At = time.UnixMilli(rt.now().Add(delay).UnixMilli())
	err := rt.schedule.PutAlarm(a)
	if err == nil {
		rt.noteRecent(&alarmChange{a: a}, a.ObjectID)
	}
	if err != nil {
		// The committed alarm keeps its old time: arm it again later so
		// the run is retried rather than forgotten.
		rt.log.Error("cannot reschedule alarm; retrying it later", "class", a.Class, "name", a.Name, "err", err)
		rt.rearmCommitted(a.ObjectID, delay)
		return
	}
	rt.timers.set(a)
	rt.metrics.alarmsRetried.Inc()
}

// timers keeps one timer per object alarm, from whatever schedule holds
// them, and calls fire when each is due. All methods are safe to call
// concurrently.
type timers struct {
	now  func() time.Time
	mu   sync.Mutex
	h    alarmHeap
	byID map[string]*timerEntry
	wake chan struct{}
}

type timerEntry struct {
	a     nodedb.Alarm
	index int
}

type alarmHeap []*timerEntry

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].a.At.Before(h[j].a.At) }
func (h alarmHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *alarmHeap) Push(x any)        { e := x.(*timerEntry); e.index = len(*h); *h = append(*h, e) }
func (h *alarmHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

func newTimers(now func() time.Time) *timers {
	return &timers{now: now, byID: map[string]*timerEntry{}, wake: make(chan struct{}, 1)}
}

func (t *timers) set(a nodedb.Alarm) {
	t.mu.Lock()
	if e, ok := t.byID[a.ObjectID]; ok {
		e.a = a
		heap.Fix(&t.h, e.index)
	} else {
		e := &timerEntry{a: a}
		heap.Push(&t.h, e)
		t.byID[a.ObjectID] = e
	}
	t.mu.Unlock()
	t.poke()
}

func (t *timers) remove(id string) {
	t.mu.Lock()
	if e, ok := t.byID[id]; ok {
		heap.Remove(&t.h, e.index)
		delete(t.byID, id)
	}
	t.mu.Unlock()
	t.poke()
}

func (t *timers) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.h)
}

func (t *timers) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// run fires due alarms until stop closes. A fired alarm leaves the heap;
// the delivery re-arms it if it is retried or set again.
func (t *timers) run(stop <-chan struct{}, fire func(nodedb.Alarm)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due []nodedb.Alarm
		wait := time.Hour
		t.mu.Lock()
		now := t.now()
		for len(t.h) > 0 {
			next := t.h[0]
			if d := next.a.At.Sub(now); d > 0 {
				wait = d
				break
			}
			heap.Pop(&t.h)
			delete(t.byID, next.a.ObjectID)
			due = append(due, next.a)
		}
		t.mu.Unlock()
		for _, a := range due {
			fire(a)
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-t.wake:
		case <-timer.C:
		}
	}
}

// recentAlarm is an alarm change this node committed whose Raft entry it
// has not applied yet (a follower learns of the commit a moment after the
// leader). Reads see it, so an owner reads its own writes without waiting.
type recentAlarm struct {
	a     nodedb.Alarm
	del   bool
	until time.Time
}

// noteRecent remembers a committed alarm change until the local copy of
// the schedule shows it (or a minute passes).
func (rt *Runtime) noteRecent(c *alarmChange, id string) {
	if !rt.replicated {
		return
	}
	rt.recentMu.Lock()
	defer rt.recentMu.Unlock()
	if rt.recent == nil {
		rt.recent = map[string]recentAlarm{}
	}
	rt.recent[id] = recentAlarm{a: c.a, del: c.del, until: time.Now().Add(time.Minute)}
}

// appliedHere forgets a recent change once the schedule applied it, and
// reports whether the applied change is older than one this node already
// committed (then the timers must not follow it).
func (rt *Runtime) appliedHere(a nodedb.Alarm, deleted bool) (older bool) {
	rt.recentMu.Lock()
	defer rt.recentMu.Unlock()
	r, ok := rt.recent[a.ObjectID]
	if !ok {
		return false
	}
	if r.del == deleted && (deleted || r.a.At.Equal(a.At) && r.a.Retry == a.Retry) {
		delete(rt.recent, a.ObjectID)
		return false
	}
	return true
}

// getAlarm reads the schedule, this node's not yet applied changes first.
func (rt *Runtime) getAlarm(id string) (nodedb.Alarm, bool, error) {
	rt.recentMu.Lock()
	r, ok := rt.recent[id]
	if ok && time.Now().After(r.until) {
		delete(rt.recent, id)
		ok = false
	}
	rt.recentMu.Unlock()
	if ok {
		return r.a, !r.del, nil
	}
	return rt.schedule.GetAlarm(id)
}
