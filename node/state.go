package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication/nodedb"
)

// Errors a handler can return (wrapped with %w) to answer with an API error.
var (
	ErrBadRequest = apierr.ErrBadRequest // 400 BAD_REQUEST
	ErrNotFound   = apierr.ErrNotFound   // 404 NOT_FOUND
	ErrConflict   = apierr.ErrConflict   // 409 CONSTRAINT (a rule of the handler: stale version, overdraft)
	ErrForbidden  = apierr.ErrForbidden  // 403 FORBIDDEN
	ErrTooLarge   = apierr.ErrTooLarge   // 413 TOO_LARGE
	ErrInternal   = apierr.ErrInternal   // 500 INTERNAL
)

// ErrorMessage is err's text as the API would answer it: without the
// words its code already says ("conflict: ", "sql error: "), for a
// handler that reports an error inside a successful answer.
func ErrorMessage(err error) string { return apierr.Message(err) }

// State is what an object gets from the runtime: its identity, storage,
// and ways to reach other objects. It lives as long as the activation.
type State struct {
	rt   *Runtime
	inst *instance
}

// ID is hex(sha256(class + "\x00" + name)).
func (s *State) ID() string { return s.inst.ref.id }

// Class is the object's class.
func (s *State) Class() string { return s.inst.ref.class }

// Name is the object's name.
func (s *State) Name() string { return s.inst.ref.name }

// Storage is the object's database.
func (s *State) Storage() *Storage { return &Storage{st: s} }

// Logger is the node's logger with the object's identity attached.
func (s *State) Logger() *slog.Logger {
	return s.rt.log.With("class", s.inst.ref.class, "name", s.inst.ref.name)
}

// NodeName is the name of the node the object runs on now.
func (s *State) NodeName() string { return s.rt.cfg.NodeName }

// Now is the runtime's clock.
func (s *State) Now() time.Time { return s.rt.now() }

// BlockConcurrencyWhile runs fn before any other event of the object can
// start. In the constructor, fn is part of the activation event: if it
// fails, the activation fails and its writes are undone, except versions
// that Migrate already committed one by one. In a later event fn runs in
// a savepoint, undone if it fails.
func (s *State) BlockConcurrencyWhile(fn func() error) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	if s.inst.obj == nil {
		// In the constructor the activation event is the transaction: a
		// failure rolls all of it back and fails the activation.
		return fn()
	}
	return st.Transaction(fn)
}

// WaitUntil runs fn after the current event has committed and its
// response was released, as an event of its own (so it may use storage).
func (s *State) WaitUntil(fn func(ctx context.Context) error) {
	if s.inst.ev == nil {
		s.rt.spawnWaitUntil(s.inst, fn)
		return
	}
	s.inst.ev.waitUntil = append(s.inst.ev.waitUntil, fn)
}

// Namespace returns the stubs factory for another class.
func (s *State) Namespace(class string) *Namespace {
	return &Namespace{rt: s.rt, class: class, from: s}
}

func (s *State) store() (*objectstore.Store, error) {
	if s.inst.ev == nil || s.inst.store == nil {
		return nil, fmt.Errorf("%w: storage used outside an event of %s/%s", apierr.ErrInternal, s.inst.ref.class, s.inst.ref.name)
	}
	return s.inst.store, nil
}

// Storage is an object's SQLite database, KV table and alarm. Every call
// is part of the current event's transaction.
type Storage struct{ st *State }

// Exec runs SQL (see objectstore.Store.Exec): several ';'-separated
// statements may be given, args bind to the last.
func (s *Storage) Exec(query string, args ...any) (*objectstore.Cursor, error) {
	st, err := s.st.store()
	if err != nil {
		return nil, err
	}
	return st.Exec(query, args...)
}

// Transaction runs fn in a nested savepoint: undone if fn fails.
func (s *Storage) Transaction(fn func() error) error {
	st, err := s.st.store()
	if err != nil {
		return err
	}
	return st.Transaction(fn)
}

// DatabaseSize is the bytes of pages in use.
func (s *Storage) DatabaseSize() (int64, error) {
	st, err := s.st.store()
	if err != nil {
		return 0, err
	}
	return st.DatabaseSize()
}

// Get reads a KV entry.
func (s *Storage) Get(key string) ([]byte, bool, error) {
	st, err := s.st.store()
	if err != nil {
		return nil, false, err
	}
	return st.Get(key)
}

// GetMany reads several KV entries; missing keys are absent from the map.
func (s *Storage) GetMany(keys []string) (map[string][]byte, error) {
	st, err := s.st.store()
	if err != nil {
		return nil, err
	}
	return st.GetMany(keys)
}

// Put writes a KV entry.
func (s *Storage) Put(key string, value []byte) error {
	st, err := s.st.store()
	if err != nil {
		return err
	}
	return st.Put(key, value)
}

// PutMany writes several KV entries, all or nothing.
func (s *Storage) PutMany(entries []objectstore.Entry) error {
	st, err := s.st.store()
	if err != nil {
		return err
	}
	return st.PutMany(entries)
}

// GetJSON reads a KV entry into v; it reports whether the key existed.
func (s *Storage) GetJSON(key string, v any) (bool, error) {
	b, ok, err := s.Get(key)
	if err != nil || !ok {
		return ok, err
	}
	return true, json.Unmarshal(b, v)
}

// PutJSON writes v as JSON under key.
func (s *Storage) PutJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	return s.Put(key, b)
}

// Delete removes a KV entry and reports whether it existed.
func (s *Storage) Delete(key string) (bool, error) {
	st, err := s.st.store()
	if err != nil {
		return false, err
	}
	return st.Delete(key)
}

// DeleteMany removes KV entries and returns how many existed.
func (s *Storage) DeleteMany(keys []string) (int, error) {
	st, err := s.st.store()
	if err != nil {
		return 0, err
	}
	return st.DeleteMany(keys)
}

// List returns KV entries in a key range.
func (s *Storage) List(o objectstore.ListOptions) ([]objectstore.Entry, error) {
	st, err := s.st.store()
	if err != nil {
		return nil, err
	}
	return st.List(o)
}

// DeleteAll wipes the object: SQL schema and rows, KV and alarm, atomically
// with the rest of the event.
func (s *Storage) DeleteAll() error {
	st, err := s.st.store()
	if err != nil {
		return err
	}
	if err := st.DeleteAll(); err != nil {
		return err
	}
	s.st.inst.ev.alarm = &alarmChange{del: true}
	return nil
}

// SetAlarm schedules the object's one alarm at t (replacing any other). It
// takes effect when the event commits; a time in the past fires at once.
func (s *Storage) SetAlarm(t time.Time) error {
	if _, err := s.st.store(); err != nil {
		return err
	}
	ref := s.st.inst.ref
	t = time.UnixMilli(t.UnixMilli())
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		// The schedule records times as RFC 3339, which stops at 9999.
		return fmt.Errorf("%w: alarm time %d ms is outside the years 0 to 9999", ErrBadRequest, t.UnixMilli())
	}
	s.st.inst.ev.alarm = &alarmChange{a: nodedb.Alarm{
		ObjectID: ref.id, Class: ref.class, Name: ref.name, Partition: ref.partition,
		At: t, Scheduled: t,
	}}
	return nil
}

// DeleteAlarm cancels the object's alarm when the event commits.
func (s *Storage) DeleteAlarm() error {
	if _, err := s.st.store(); err != nil {
		return err
	}
	s.st.inst.ev.alarm = &alarmChange{del: true}
	return nil
}

// GetAlarm returns the alarm time, counting this event's own change.
func (s *Storage) GetAlarm() (time.Time, bool, error) {
	if _, err := s.st.store(); err != nil {
		return time.Time{}, false, err
	}
	if c := s.st.inst.ev.alarm; c != nil {
		if c.del {
			return time.Time{}, false, nil
		}
		return c.a.Scheduled, true, nil
	}
	a, ok, err := s.st.rt.getAlarm(s.st.inst.ref.id)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return a.Scheduled, true, nil
}

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Up      func(s *Storage) error
}

// Migrate applies, in order, every migration newer than the version
// recorded in _dura_schema_version. Each runs and is committed in its own
// transaction, so a failure keeps the versions before it.
func (s *Storage) Migrate(ms ...Migration) error {
	st, err := s.st.store()
	if err != nil {
		return err
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			return fmt.Errorf("%w: migration versions must increase: %d after %d", apierr.ErrInternal, ms[i].Version, ms[i-1].Version)
		}
	}
	cur, err := st.SchemaVersion()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		err := st.Transaction(func() error {
			if err := m.Up(s); err != nil {
				return err
			}
			return st.RecordSchemaVersion(m.Version, s.st.rt.now())
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", m.Version, err)
		}
		if err := s.st.rt.checkpoint(s.st.inst); err != nil {
			return fmt.Errorf("migration %d: %w", m.Version, err)
		}
	}
	return nil
}

// SchemaVersion is the highest applied migration, 0 if none.
func (s *Storage) SchemaVersion() (int, error) {
	st, err := s.st.store()
	if err != nil {
		return 0, err
	}
	return st.SchemaVersion()
}

// ObjectCaller reaches objects that another node of the cluster serves;
// rpc.Server implements it. CallObject answers local=true when this node
// serves class/name, and otherwise the owner's response, or its error
// with the code it would have here. chain lists the IDs of the objects
// waiting on the call.
type ObjectCaller interface {
	CallObject(ctx context.Context, class, name string, req *http.Request, chain []string) (resp *http.Response, local bool, err error)
}

// SetObjectCaller lets stubs reach objects on other nodes; without one
// every stub call runs here.
func (rt *Runtime) SetObjectCaller(c ObjectCaller) { rt.caller.Store(&c) }

// Namespace makes stubs for the objects of one class.
type Namespace struct {
	rt    *Runtime
	class string
	from  *State
}

// Get returns the stub of the named object. It does no I/O.
func (n *Namespace) Get(name string) *Stub {
	return &Stub{ns: n, name: name}
}

// Stub calls another object.
type Stub struct {
	ns   *Namespace
	name string
}

// Fetch sends req to the object's handler and returns its response. The
// call is an event of the target object; a call back into an object that
// is waiting on this call fails with CONSTRAINT (409) instead of
// deadlocking. Calls are not reentrant: two events that call across each
// other (A->B while B->A) wait for each other until their contexts end.
func (s *Stub) Fetch(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if s.ns.from != nil && s.ns.from.inst.ev != nil {
		ctx = s.ns.from.inst.ev.ctx
	}
	if rc := s.ns.rt.caller.Load(); rc != nil {
		// In a cluster the target may live on another node: the call
		// goes there like a forwarded request, carrying the chain of
		// objects waiting on it.
		resp, local, err := (*rc).CallObject(ctx, s.ns.class, s.name, req, chainOf(ctx))
		if err != nil {
			return nil, err
		}
		if !local {
			return resp, nil
		}
	}
	buf := newBufferedResponse()
	if err := s.ns.rt.Call(ctx, s.ns.class, s.name, buf, req.WithContext(ctx)); err != nil {
		return nil, err
	}
	return buf.response(req), nil
}

// bufferedResponse holds a handler's response until its event commits
// (the output gate).
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse {
	return &bufferedResponse{header: http.Header{}}
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// response turns the held answer into the *http.Response a stub returns.
func (b *bufferedResponse) response(req *http.Request) *http.Response {
	status := b.status
	if status == 0 {
		status = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: b.header, Body: io.NopCloser(bytes.NewReader(b.body.Bytes())),
		ContentLength: int64(b.body.Len()), Request: req,
	}
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}
