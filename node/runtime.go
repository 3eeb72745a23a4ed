package node

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication/nodedb"
	"github.com/dura-dev/dura/replication/nodelog"
)

// Object is an instance of a class. Fetch handles one HTTP request as an
// event: returning an error (or panicking) rolls back every write of the
// event and discards what was written to w. Errors wrapping the sentinels
// of this package (ErrBadRequest, ErrNotFound, ErrConflict, ...) become
// the matching API error; others are INTERNAL.
type Object interface {
	Fetch(w http.ResponseWriter, r *http.Request) error
}

// Alarmer is implemented by classes that handle alarms.
type Alarmer interface {
	Alarm(ctx context.Context, info AlarmInfo) error
}

// AlarmInfo describes the alarm being delivered.
type AlarmInfo struct {
	RetryCount    int       // retries made before this run
	IsRetry       bool      // RetryCount > 0
	ScheduledTime time.Time // the time SetAlarm asked for
}

// Constructor builds an object when it is activated. Storage set-up goes
// in st.BlockConcurrencyWhile; the constructor runs inside an event, so
// its writes commit or roll back together.
type Constructor func(st *State) (Object, error)

// Runtime runs objects on this node. All exported methods are safe to
// call concurrently.
type Runtime struct {
	cfg         Config
	log         *slog.Logger
	now         func() time.Time
	schedule    AlarmSchedule
	catalog     *nodedb.LocalSchedule // object index (see catalog.go)
	catalogCh   chan nodedb.ObjectRecord
	catalogSync chan chan struct{} // asks the catalog writer to write what is queued
	closeQ      chan closeJob      // stores to close, objects to park (lifecycle.go)
	closers     []io.Closer
	metrics     *metrics
	timers      *timers
	alarmSem    chan struct{}

	classMu sync.RWMutex
	classes map[string]Constructor

	mu            sync.Mutex
	objects       map[string]*instance
	lru           *list.List // of *instance, most recently used at the front
	openLRU       *list.List // the instances with an open database, likewise
	open          int        // open databases and slots reserved for opening
	parking       int        // of them, being parked
	inflight      int        // events running or waiting
	closing       bool
	drained       chan struct{} // closed when inflight reaches 0 while closing
	drainedClosed bool

	// The node log (Config.NodeLog): nil when off. logPins holds, per
	// object, the position of its first record since its last
	// checkpoint; the log keeps every segment from the earliest.
	nlog      *nodelog.Log
	logFailed atomic.Bool
	logMu     sync.Mutex
	logPins   map[string]logPin
	// hist is the history (Config.PITRRetention): nil when off.
	hist *archive
	// statsBudget bounds the statement statistics of every open object.
	statsBudget *objectstore.StatsBudget
	// replicator ships commits to replicas (nil: none); replica holds
	// this node's copies of partitions it does not serve (replica.go).
	replicator Replicator
	replica    replicaState
	// unconfirmed: objects with a write of unknown outcome (unconfirmed.go)
	unconfirmed unconfirmed

	fence  atomic.Pointer[func(partition int) error] // nil: serve every partition
	caller atomic.Pointer[ObjectCaller]              // nil: stubs call this node only
	// alarmHandlers records, per class, whether its objects implement
	// Alarmer (learnt at activation).
	alarmHandlers sync.Map
	cluster       Coordinator // nil on a lone node
	// replicated is set when the schedule is the cluster's (Raft): alarms
	// then stay in it when their partition moves, and timers follow
	// ownership (the cluster arms them).
	replicated bool
	recentMu   sync.Mutex
	recent     map[string]recentAlarm // see noteRecent

	bg     sync.WaitGroup // WaitUntil functions and alarm deliveries
	stop   chan struct{}
	loopWG sync.WaitGroup
}

// New builds a runtime; it does no I/O until Start.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	rt := &Runtime{
		cfg:         cfg,
		log:         cfg.Logger,
		now:         cfg.Now,
		schedule:    cfg.Schedule,
		classes:     map[string]Constructor{},
		objects:     map[string]*instance{},
		lru:         list.New(),
		openLRU:     list.New(),
		stop:        make(chan struct{}),
		alarmSem:    make(chan struct{}, cfg.AlarmConcurrency),
		catalogCh:   make(chan nodedb.ObjectRecord, 4096),
		catalogSync: make(chan chan struct{}),
		closeQ:      make(chan closeJob, maxPendingCloses),
	}
	if rt.log == nil {
		rt.log = slog.New(slog.DiscardHandler)
	}
	if rt.now == nil {
		rt.now = time.Now
	}
	if cfg.StatementStatsBytes > 0 {
		rt.statsBudget = objectstore.NewStatsBudget(cfg.StatementStatsBytes)
	}
	rt.metrics = newMetrics(cfg.Registerer, rt)
	rt.timers = newTimers(rt.now)
	rt.Register("db", func(*State) (Object, error) { return dbObject{}, nil })
	return rt, nil
}

// dbObject is the storage-only class: no handler, alarms just clear.
type dbObject struct{}

func (dbObject) Fetch(http.ResponseWriter, *http.Request) error {
	return fmt.Errorf("%w: class db has no request handler; use the /v1 routes", ErrNotFound)
}

// Register adds a class. Registering a name twice replaces it.
func (rt *Runtime) Register(class string, ctor Constructor) error {
	if err := placement.ValidateClass(class); err != nil {
		return err
	}
	rt.classMu.Lock()
	defer rt.classMu.Unlock()
	rt.classes[class] = ctor
	return nil
}

// Classes lists the registered classes.
func (rt *Runtime) Classes() []string {
	rt.classMu.RLock()
	defer rt.classMu.RUnlock()
	out := make([]string, 0, len(rt.classes))
	for c := range rt.classes {
		out = append(out, c)
	}
	return out
}

func (rt *Runtime) class(name string) (Constructor, bool) {
	rt.classMu.RLock()
	defer rt.classMu.RUnlock()
	c, ok := rt.classes[name]
	return c, ok
}

// Start opens the alarm schedule, arms every stored alarm and starts the
// eviction loop.
func (rt *Runtime) Start(ctx context.Context) error {
	if err := os.MkdirAll(rt.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	if rt.cfg.NodeLog {
		l, err := nodelog.Open(nodelog.Config{Dir: filepath.Join(rt.cfg.DataDir, "log"), Logger: rt.log})
		if err != nil {
			return fmt.Errorf("start node: %w", err)
		}
		rt.nlog, rt.logPins = l, map[string]logPin{}
		if err := rt.openHistory(); err != nil {
			l.Close()
			return fmt.Errorf("start node: %w", err)
		}
		if err := rt.recoverFromLog(); err != nil {
			l.Close()
			return fmt.Errorf("start node: %w", err)
		}
	}
	local, err := nodedb.OpenLocalSchedule(filepath.Join(rt.cfg.DataDir, "node.db"))
	if err != nil {
		return err
	}
	rt.catalog = local
	rt.closers = append(rt.closers, local)
	clean, err := local.Clean()
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	if !clean {
		if err := rt.reconcileCatalog(ctx); err != nil {
			return fmt.Errorf("start node: rebuild object catalog: %w", err)
		}
	}
	if err := local.SetClean(false); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	if rt.schedule == nil {
		rt.schedule = local
	}
	alarms, err := rt.schedule.Alarms()
	if err != nil {
		return fmt.Errorf("start node: load alarms: %w", err)
	}
	for _, a := range alarms {
		rt.timers.set(a)
	}
	rt.metrics.alarmsScheduled.Set(float64(len(alarms)))
	rt.loopWG.Add(3 + closers)
	for range closers {
		go func() { defer rt.loopWG.Done(); rt.closer(rt.stop) }()
	}
	go func() { defer rt.loopWG.Done(); rt.timers.run(rt.stop, rt.deliverAlarm) }()
	go func() { defer rt.loopWG.Done(); rt.catalogWriter(rt.stop) }()
	go func() { defer rt.loopWG.Done(); rt.janitor() }()
	if rt.hist != nil {
		rt.loopWG.Add(1)
		go func() { defer rt.loopWG.Done(); rt.historyLoop() }()
	}
	rt.log.Info("node started", "data", rt.cfg.DataDir, "alarms", len(alarms), "classes", len(rt.Classes()))
	return nil
}

// Close stops taking events, waits for running ones (and their WaitUntil
// work) until ctx ends, then closes every database.
func (rt *Runtime) Close(ctx context.Context) error {
	rt.mu.Lock()
	if rt.closing {
		rt.mu.Unlock()
		return nil
	}
	rt.closing = true
	rt.drained = make(chan struct{})
	if rt.inflight == 0 {
		close(rt.drained)
		rt.drainedClosed = true
	}
	rt.mu.Unlock()
	close(rt.stop)
	var err error
	select {
	case <-rt.drained:
	case <-ctx.Done():
		err = fmt.Errorf("close node: events still running: %w", ctx.Err())
	}
	// The timer loop may still be handing out a due alarm: stop it before
	// waiting for background work, so nothing is added to bg meanwhile.
	rt.loopWG.Wait()
	bgDone := make(chan struct{})
	go func() { rt.bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-ctx.Done():
	}
	// WaitUntil work may have created objects or evicted others after the
	// loops stopped: write and close what they left.
	if rt.catalog != nil {
		rt.drainCatalog()
	}
	rt.drainCloses()
	rt.mu.Lock()
	var stores []*objectstore.Store
	for id, inst := range rt.objects {
		if inst.refs == 0 && inst.store != nil {
			stores = append(stores, inst.store)
			inst.store = nil
		}
		delete(rt.objects, id)
	}
	rt.open = 0
	rt.openLRU.Init()
	rt.mu.Unlock()
	for _, s := range stores {
		rt.closeStore(s)
	}
	if rt.nlog != nil {
		rt.closeHistory()
		rt.trimLog()
		rt.nlog.Close()
	}
	if err == nil && rt.catalog != nil {
		// Every queued record was written by the catalog writer's last
		// flush (loopWG): the catalog is complete.
		rt.catalog.SetClean(true)
	}
	for _, c := range rt.closers {
		c.Close()
	}
	return err
}

// objectRef identifies an object.
type objectRef struct {
	id, class, name string
	partition       int
}

func (rt *Runtime) ref(class, name string) (objectRef, error) {
	if err := placement.ValidateClass(class); err != nil {
		return objectRef{}, err
	}
	if err := placement.ValidateName(name); err != nil {
		return objectRef{}, err
	}
	if _, ok := rt.class(class); !ok {
		return objectRef{}, fmt.Errorf("%w: %q", apierr.ErrUnknownClass, class)
	}
	id := placement.ObjectID(class, name)
	return objectRef{id: id, class: class, name: name, partition: placement.PartitionOf(id, rt.cfg.Partitions)}, nil
}

func (rt *Runtime) path(ref objectRef) string {
	return filepath.Join(rt.cfg.DataDir, "partitions", strconv.Itoa(ref.partition), ref.id+".db")
}

// instance is an activated object.
type instance struct {
	ref objectRef
	sem chan struct{} // held by the one event running on the object

	// Guarded by sem.
	store *objectstore.Store
	obj   Object
	state *State
	ev    *event

	// Guarded by Runtime.mu.
	refs     int
	elem     *list.Element
	openElem *list.Element // in Runtime.openLRU while its database is open
	lastUsed time.Time
	released bool // its store gave back its caches since it was last used
}

// event is the state of the event running on an instance.
type event struct {
	ctx       context.Context
	alarm     *alarmChange
	waitUntil []func(context.Context) error
	// restore, when set, is the transaction the object is brought back
	// to instead of committing the event (Storage.RestoreBookmark).
	restore *uint64
}

type alarmChange struct {
	del bool
	a   nodedb.Alarm
	// fired, on a deletion, is the time of the alarm that just ran: the
	// schedule may clear it later (and only if it was not set again).
	fired time.Time
}

// acquire finds or creates the instance of ref and pins it against eviction.
// While the node shuts down only WaitUntil work (background) gets in: it
// belongs to events that already answered.
func (rt *Runtime) acquire(ref objectRef, background bool) (*instance, error) {
	rt.mu.Lock()
	if rt.closing && !background {
		rt.mu.Unlock()
		return nil, apierr.NotExecuted(fmt.Errorf("%w: node %s is shutting down", apierr.ErrOwnerUnavailable, rt.cfg.NodeName))
	}
	var victims []*objectstore.Store
	inst := rt.objects[ref.id]
	if inst == nil {
		inst = &instance{ref: ref, sem: make(chan struct{}, 1)}
		inst.elem = rt.lru.PushFront(inst)
		rt.objects[ref.id] = inst
		victims = rt.overLiveCapLocked()
		rt.metrics.activeObjects.Set(float64(len(rt.objects)))
	}
	inst.refs++
	rt.inflight++
	rt.mu.Unlock()
	for _, s := range victims {
		rt.closeLater(closeJob{store: s})
	}
	return inst, nil
}

// overLiveCapLocked evicts the least recently used idle objects while
// more than MaxObjects are live, and returns their stores to close (most
// are parked: closing them costs nothing). rt.mu held.
func (rt *Runtime) overLiveCapLocked() []*objectstore.Store {
	limit := rt.cfg.MaxObjects
	if limit == 0 {
		limit = DefaultMaxObjects
	}
	var victims []*objectstore.Store
	for e := rt.lru.Back(); e != nil && len(rt.objects) > limit; {
		prev := e.Prev()
		if inst := e.Value.(*instance); inst.refs == 0 && inst.store != nil {
			victims = append(victims, rt.evictLocked(inst))
		}
		e = prev
	}
	return victims
}

func (rt *Runtime) release(inst *instance) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	inst.refs--
	inst.lastUsed = rt.now()
	inst.released = false
	if inst.elem != nil {
		rt.lru.MoveToFront(inst.elem)
	}
	if inst.openElem != nil {
		rt.openLRU.MoveToFront(inst.openElem)
	}
	if inst.refs == 0 && inst.store == nil && inst.elem != nil {
		// Never activated (or failed to): nothing to keep.
		rt.lru.Remove(inst.elem)
		inst.elem = nil
		delete(rt.objects, inst.ref.id)
		rt.metrics.activeObjects.Set(float64(len(rt.objects)))
	}
	rt.inflight--
	if rt.closing && rt.inflight == 0 && !rt.drainedClosed {
		close(rt.drained)
		rt.drainedClosed = true
	}
}

// exclusive runs fn while holding the object's event slot, without
// activating it or opening a transaction.
func (rt *Runtime) exclusive(ctx context.Context, ref objectRef, fn func(inst *instance) error) error {
	if chainHas(ctx, ref.id) {
		return fmt.Errorf("%w: call cycle: object %s/%s is already handling this call", apierr.ErrConflict, ref.class, ref.name)
	}
	if rt.logFailed.Load() {
		return apierr.NotExecuted(fmt.Errorf("%w: node %s lost its node log; restart it", apierr.ErrInternal, rt.cfg.NodeName))
	}
	_, background := ctx.Value(backgroundKey{}).(bool)
	inst, err := rt.acquire(ref, background)
	if err != nil {
		return err
	}
	defer rt.release(inst)
	select {
	case inst.sem <- struct{}{}:
	case <-ctx.Done():
		if cause := context.Cause(ctx); errors.Is(cause, apierr.ErrOwnerUnavailable) {
			return apierr.NotExecuted(cause) // the lease ran out
		}
		return apierr.NotExecuted(fmt.Errorf("%w: waiting for object %s/%s: %v", apierr.ErrTimeout, ref.class, ref.name, ctx.Err()))
	}
	defer func() { <-inst.sem }()
	// Fencing: checked while holding the object, so a partition that
	// stops being ours drains (ClosePartition) behind the last event.
	if fence := rt.fence.Load(); fence != nil {
		if err := (*fence)(ref.partition); err != nil {
			return err
		}
	}
	return fn(inst)
}

// run runs fn as one event of the object: activated if needed, inside a
// transaction that commits (with its alarm change) only if fn succeeds.
// after, if given, runs with fn's result while the object is still held.
func (rt *Runtime) run(ctx context.Context, ref objectRef, fn func(inst *instance) error, after func(inst *instance, err error)) error {
	if rt.cluster != nil {
		// An event outliving this node's lease is cancelled.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		lease := rt.cluster.Lease()
		stop := context.AfterFunc(lease, func() { cancel(context.Cause(lease)) })
		defer stop()
		defer cancel(nil)
	}
	return rt.exclusive(ctx, ref, func(inst *instance) error {
		// Not in exclusive: seeding a replica copies such an object.
		if err := rt.confirmed(ref); err != nil {
			return err
		}
		var err error
		if inst.store == nil {
			// An object that cannot be opened or constructed ran nothing
			// of this event.
			err = apierr.NotExecuted(rt.activate(ctx, inst))
		} else if inst.store.Parked() {
			err = apierr.NotExecuted(rt.unpark(inst))
		}
		if err == nil {
			err = rt.event(ctx, inst, fn)
		}
		if after != nil {
			after(inst, err)
		}
		return err
	})
}

// maxPendingCloses bounds evicted databases waiting to be closed, so open
// files stay within MaxOpenFiles + maxPendingCloses*FilesPerObject.
const maxPendingCloses = 16

// closers close evicted databases in parallel: closing a WAL database
// checkpoints it (an fsync), and a burst of activations (alarms coming
// due on thousands of objects) evicts one database per activation.
const closers = 4

// event runs fn in a transaction on an active instance.
func (rt *Runtime) event(ctx context.Context, inst *instance, fn func(inst *instance) error) error {
	ev := &event{ctx: withChain(ctx, inst.ref.id)}
	inst.ev = ev
	defer func() { inst.ev = nil }()
	if err := inst.store.Begin(); err != nil {
		return err
	}
	if err := safeCall(rt, inst, fn); err != nil {
		inst.store.Rollback()
		return err
	}
	if err := rt.commit(inst, ev); err != nil {
		return err
	}
	for _, w := range ev.waitUntil {
		rt.spawnWaitUntil(inst, w)
	}
	return nil
}

// commit makes the event durable. A new alarm time is recorded before the
// SQLite commit (an alarm that cannot be recorded fails the event); a
// deletion only after it, so a crash in between leaves the alarm to fire
// again (at least once) rather than losing it with the writes undone.
func (rt *Runtime) commit(inst *instance, ev *event) error {
	if ev.restore != nil {
		// The restore replaces whatever the event wrote.
		inst.store.Rollback()
		_, err := rt.restoreLocked(inst, *ev.restore)
		return err
	}
	if c := ev.alarm; c != nil && rt.hist != nil {
		// The object's history keeps its alarm with its data.
		if err := inst.store.MirrorAlarm(c.a.Scheduled, !c.del); err != nil {
			inst.store.Rollback()
			return err
		}
	}
	if rt.nlog != nil && rt.nlog.Low() && inst.store.Dirty() {
		// Committed, the write could find no room in the log: refused
		// while the log's reserve is all that is left.
		inst.store.Rollback()
		return apierr.NotExecuted(fmt.Errorf("%w: node %s's disk has no room for its log", apierr.ErrStorageFull, rt.cfg.NodeName))
	}
	if r := rt.replicator; r != nil && inst.store.Dirty() {
		// A write its partition cannot acknowledge now is not committed:
		// the request may wait and try again.
		if err := r.Writable(inst.ref.partition); err != nil {
			inst.store.Rollback()
			return apierr.NotExecuted(err)
		}
	}
	c := ev.alarm
	var prev nodedb.Alarm
	var hadPrev bool
	if c != nil && !c.del {
		var err error
		prev, hadPrev, err = rt.getAlarm(inst.ref.id)
		if err == nil {
			err = rt.applyAlarm(inst.ref, c)
		}
		if err != nil {
			inst.store.Rollback()
			return fmt.Errorf("%w: record alarm: %v", apierr.ErrInternal, err)
		}
	}
	err := inst.store.Commit()
	if err == nil && rt.nlog != nil {
		// The output gate: the response waits for the log.
		err = rt.logCommit(inst)
	}
	if err != nil {
		if c != nil && !c.del {
			// Undo the alarm change so it does not outlive the writes.
			if hadPrev {
				rt.applyAlarm(inst.ref, &alarmChange{a: prev})
			} else {
				rt.applyAlarm(inst.ref, &alarmChange{del: true})
			}
		}
		return err
	}
	if c != nil && c.del {
		if err := rt.applyAlarm(inst.ref, c); err != nil {
			// The writes are committed; the alarm stays and fires again.
			rt.log.Warn("cannot delete an alarm; it will fire again", "class", inst.ref.class, "name", inst.ref.name, "err", err)
			rt.rearmCommitted(inst.ref.id, RetryBase)
		}
	}
	return nil
}

func (rt *Runtime) applyAlarm(ref objectRef, c *alarmChange) error {
	fc, batched := rt.schedule.(firedClearer)
	if c.del {
		if batched && !c.fired.IsZero() {
			// A run that succeeded: its clearing joins the next batch
			// instead of holding the object (and an alarm slot) for a
			// commit of its own. Until then this node reads it as gone;
			// a crash before the batch commits can only run it again.
			fc.ClearFired(ref.id, c.fired)
		} else if err := rt.schedule.DeleteAlarm(ref.id); err != nil {
			return err
		}
		rt.noteRecent(c, ref.id)
		rt.timers.remove(ref.id)
	} else {
		if err := rt.schedule.PutAlarm(c.a); err != nil {
			return err
		}
		rt.noteRecent(c, ref.id)
		rt.timers.set(c.a)
	}
	rt.metrics.alarmsScheduled.Set(float64(rt.timers.len()))
	return nil
}

// safeCall runs fn, turning a panic into an INTERNAL error.
func safeCall(rt *Runtime, inst *instance, fn func(*instance) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			rt.log.Error("handler panicked", "class", inst.ref.class, "name", inst.ref.name, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: handler panicked: %v", apierr.ErrInternal, p)
		}
	}()
	return fn(inst)
}

// spawnWaitUntil runs a WaitUntil function as an event of its own once
// the event that asked for it has committed. The instance stays pinned
// until then, so the State the function captured is still the live one.
func (rt *Runtime) spawnWaitUntil(inst *instance, fn func(context.Context) error) {
	rt.mu.Lock()
	inst.refs++
	rt.mu.Unlock()
	rt.bg.Add(1)
	go func() {
		defer rt.bg.Done()
		defer rt.unpin(inst)
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), backgroundKey{}, true), time.Minute)
		defer cancel()
		err := rt.run(ctx, inst.ref, func(*instance) error { return fn(ctx) }, nil)
		if err != nil {
			rt.log.Warn("waitUntil failed", "class", inst.ref.class, "name", inst.ref.name, "err", err)
		}
	}()
}

// unpin drops a reference taken outside an event.
func (rt *Runtime) unpin(inst *instance) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	inst.refs--
}

func recordOf(ref objectRef) nodedb.ObjectRecord {
	return nodedb.ObjectRecord{ID: ref.id, Class: ref.class, Name: ref.name, Partition: ref.partition}
}
