package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/rpc"
)

// The Runtime serves the HTTP API of one node.
var (
	_ rpc.Backend     = (*Runtime)(nil)
	_ rpc.AlarmLister = (*Runtime)(nil)
)

// NodeName names this node.
func (rt *Runtime) NodeName() string { return rt.cfg.NodeName }

// KnownClass reports whether class is registered.
func (rt *Runtime) KnownClass(class string) bool {
	_, ok := rt.class(class)
	return ok
}

// kvJSON is a KV value as the API shows it: JSON as stored, anything else
// (bytes a class stored through the SDK) as {"$base64": "..."}.
func kvJSON(v []byte) rpc.RawJSON {
	if json.Valid(v) {
		return v
	}
	b, _ := json.Marshal(map[string]string{"$base64": base64.StdEncoding.EncodeToString(v)})
	return b
}

// Call runs the class's handler for r as an event and writes the response
// only after the event committed.
func (rt *Runtime) Call(ctx context.Context, class, name string, w http.ResponseWriter, r *http.Request) error {
	ref, err := rt.ref(class, name)
	if err != nil {
		return err
	}
	buf := newBufferedResponse()
	ctx = withChainHeader(ctx, r.Header.Get(rpc.HeaderChain))
	err = rt.run(ctx, ref, func(inst *instance) error {
		return inst.obj.Fetch(buf, r.WithContext(inst.ev.ctx))
	}, nil)
	if err != nil {
		return err
	}
	buf.flushTo(w)
	return nil
}

// StatementError names the failed statement of a multi-statement request.
type StatementError struct {
	Index int // 0-based
	Err   error
}

func (e *StatementError) Error() string { return fmt.Sprintf("statement %d: %v", e.Index, e.Err) }
func (e *StatementError) Unwrap() error { return e.Err }

// StatementIndex is the 0-based index of the failed statement.
func (e *StatementError) StatementIndex() int { return e.Index }

// SQL runs statements in one transaction: all of them or none.
func (rt *Runtime) SQL(ctx context.Context, class, name string, stmts []rpc.Statement) ([]rpc.SQLResult, error) {
	ref, err := rt.ref(class, name)
	if err != nil {
		return nil, err
	}
	if len(stmts) == 0 {
		return nil, fmt.Errorf("%w: no statements", apierr.ErrBadRequest)
	}
	out := make([]rpc.SQLResult, 0, len(stmts))
	err = rt.run(ctx, ref, func(inst *instance) error {
		for i, s := range stmts {
			c, err := inst.store.Exec(s.SQL, s.Params...)
			if err != nil {
				return &StatementError{Index: i, Err: err}
			}
			rows := c.Raw()
			if rows == nil {
				rows = [][]any{}
			}
			cols := c.ColumnNames()
			if cols == nil {
				cols = []string{}
			}
			out = append(out, rpc.SQLResult{Columns: cols, Rows: rows, RowsRead: c.RowsRead(),
				RowsWritten: c.RowsWritten(), Changes: c.Changes(), LastInsertID: c.LastInsertID()})
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// KVGet reads one KV entry; NOT_FOUND if absent.
func (rt *Runtime) KVGet(ctx context.Context, class, name, key string) (rpc.RawJSON, error) {
	var out rpc.RawJSON
	err := rt.withStore(ctx, class, name, func(inst *instance) error {
		v, ok, err := inst.store.Get(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: no key %q", apierr.ErrNotFound, key)
		}
		out = kvJSON(v)
		return nil
	})
	return out, err
}

// KVPut writes one KV entry; value must be JSON.
func (rt *Runtime) KVPut(ctx context.Context, class, name, key string, value rpc.RawJSON) error {
	if !json.Valid(value) {
		return fmt.Errorf("%w: value is not valid JSON", apierr.ErrBadRequest)
	}
	return rt.withStore(ctx, class, name, func(inst *instance) error {
		return inst.store.Put(key, value)
	})
}

// KVDelete removes one KV entry and reports whether it existed.
func (rt *Runtime) KVDelete(ctx context.Context, class, name, key string) (bool, error) {
	var existed bool
	err := rt.withStore(ctx, class, name, func(inst *instance) error {
		var err error
		existed, err = inst.store.Delete(key)
		return err
	})
	return existed, err
}

// KVList lists KV entries in a range.
func (rt *Runtime) KVList(ctx context.Context, class, name string, o rpc.KVList) ([]rpc.KVEntry, error) {
	out := []rpc.KVEntry{}
	err := rt.withStore(ctx, class, name, func(inst *instance) error {
		es, err := inst.store.List(objectstore.ListOptions{Start: o.Start, StartAfter: o.StartAfter, End: o.End,
			Prefix: o.Prefix, Reverse: o.Reverse, Limit: o.Limit})
		for _, e := range es {
			out = append(out, rpc.KVEntry{Key: e.Key, Value: kvJSON(e.Value)})
		}
		return err
	})
	return out, err
}

// GetAlarm returns the alarm in unix ms, nil if none.
func (rt *Runtime) GetAlarm(ctx context.Context, class, name string) (*int64, error) {
	ref, err := rt.ref(class, name)
	if err != nil {
		return nil, err
	}
	a, ok, err := rt.getAlarm(ref.id)
	if err != nil || !ok {
		return nil, err
	}
	ms := a.Scheduled.UnixMilli()
	return &ms, nil
}

// SetAlarm schedules the object's alarm at atMillis (unix ms).
func (rt *Runtime) SetAlarm(ctx context.Context, class, name string, atMillis int64) error {
	return rt.withStore(ctx, class, name, func(inst *instance) error {
		return inst.state.Storage().SetAlarm(time.UnixMilli(atMillis))
	})
}

// DeleteAlarm cancels the object's alarm.
func (rt *Runtime) DeleteAlarm(ctx context.Context, class, name string) error {
	return rt.withStore(ctx, class, name, func(inst *instance) error {
		return inst.state.Storage().DeleteAlarm()
	})
}

// Info describes an object without activating it.
func (rt *Runtime) Info(ctx context.Context, class, name string) (rpc.ObjectInfo, error) {
	ref, err := rt.ref(class, name)
	if err != nil {
		return rpc.ObjectInfo{}, err
	}
	info := rpc.ObjectInfo{ID: ref.id, Class: class, Name: name, Partition: ref.partition, Owner: rt.cfg.NodeName, Primary: rt.cfg.NodeName, Replicas: []string{rt.cfg.NodeName}}
	if rt.cluster != nil {
		info.Replicas = rt.cluster.Replicas(ref.partition)
	}
	if st, err := os.Stat(rt.path(ref)); err == nil {
		info.SizeBytes = st.Size()
		if wal, err := os.Stat(rt.path(ref) + "-wal"); err == nil {
			info.SizeBytes += wal.Size()
		}
	}
	info.Alarm, err = rt.GetAlarm(ctx, class, name)
	if err != nil {
		return info, err
	}
	has, known := rt.alarmHandlers.Load(class)
	if !known && info.SizeBytes > 0 {
		// Only a live object of the class says; this one exists, so
		// activating it creates nothing. A class not seen yet on this
		// node, asked about a new object, leaves the field out.
		if err := rt.withStore(ctx, class, name, func(*instance) error { return nil }); err != nil {
			return info, err
		}
		has, known = rt.alarmHandlers.Load(class)
	}
	if known {
		h := has.(bool)
		info.AlarmHandler = &h
	}
	return info, nil
}

// DeleteObject wipes the object's SQL, KV and alarm in one event.
func (rt *Runtime) DeleteObject(ctx context.Context, class, name string) error {
	return rt.withStore(ctx, class, name, func(inst *instance) error {
		return inst.state.Storage().DeleteAll()
	})
}

// Export streams a consistent copy of the object's database.
func (rt *Runtime) Export(ctx context.Context, class, name string, w io.Writer) error {
	ref, err := rt.ref(class, name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(rt.path(ref)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: object %s/%s has no storage yet", apierr.ErrNotFound, class, name)
	}
	_, err = objectstore.Export(rt.path(ref), w)
	return err
}

// Import replaces the object's database with the SQLite file read from r,
// after checking it. The object is held for the swap and re-activated by
// its next event.
func (rt *Runtime) Import(ctx context.Context, class, name string, r io.Reader) error {
	ref, err := rt.ref(class, name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(rt.path(ref))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".import-*.db")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(r, rt.cfg.MaxObjectBytes+1))
	tmp.Close()
	if err != nil {
		return fmt.Errorf("%w: reading upload: %v", apierr.ErrBadRequest, err)
	}
	if n > rt.cfg.MaxObjectBytes {
		return fmt.Errorf("%w: upload is larger than the object limit of %d bytes", apierr.ErrStorageFull, rt.cfg.MaxObjectBytes)
	}
	if err := objectstore.ValidateImport(tmp.Name(), rt.cfg.MaxObjectBytes); err != nil {
		return err
	}
	if rt.nlog != nil {
		// The file is stamped with our identity and becomes the object's
		// next commit: logged, shipped to replicas, in its history.
		if err := rt.stampIdentityAt(ref, tmp.Name()); err != nil {
			return err
		}
		return rt.exclusive(ctx, ref, func(inst *instance) error {
			_, err := rt.commitFile(inst, tmp.Name(), false)
			return err
		})
	}
	return rt.exclusive(ctx, ref, func(inst *instance) error {
		if inst.store != nil {
			rt.closeStore(inst.store)
			inst.store, inst.obj, inst.state = nil, nil, nil
			rt.closed(inst)
		}
		_, statErr := os.Stat(rt.path(ref))
		if err := objectstore.ReplaceFile(rt.path(ref), tmp.Name()); err != nil {
			return err
		}
		// The file may carry another object's identity: write ours.
		if err := rt.stampIdentity(ref); err != nil {
			return err
		}
		// The imported file (synced) is the object now: its earlier
		// records must never be replayed over it.
		rt.logObjectReset(ref.id, ref.partition)
		if errors.Is(statErr, os.ErrNotExist) {
			rt.recordNew(ref)
		}
		return nil
	})
}

// stampIdentity records ref's class and name in its (closed) file.
func (rt *Runtime) stampIdentity(ref objectRef) error {
	return rt.stampIdentityAt(ref, rt.path(ref))
}

// stampIdentityAt records ref's class and name in the (closed) file at path.
func (rt *Runtime) stampIdentityAt(ref objectRef, path string) error {
	s, err := objectstore.Open(objectstore.Config{Path: path, MaxBytes: rt.cfg.MaxObjectBytes, StatementTimeout: rt.cfg.StatementTimeout})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Begin(); err != nil {
		return err
	}
	if err := s.SetIdentity(ref.class, ref.name); err != nil {
		s.Rollback()
		return err
	}
	return s.Commit()
}

// ListObjects lists the objects by class and name, a page at a time:
// this node's catalog, or in a cluster every member's merged.
func (rt *Runtime) ListObjects(ctx context.Context, class, cursor string, limit int) (rpc.ObjectList, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if class != "" {
		if _, ok := rt.class(class); !ok {
			return rpc.ObjectList{}, fmt.Errorf("%w: %q", apierr.ErrUnknownClass, class)
		}
	}
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return rpc.ObjectList{}, fmt.Errorf("%w: invalid cursor", apierr.ErrBadRequest)
	}
	if rt.cluster != nil {
		return rt.cluster.ListObjects(ctx, class, string(after), limit)
	}
	return rt.localObjects(ctx, class, string(after), limit)
}

// localObjects lists this node's catalog after the raw key after; the
// cursor of the answer is that raw key, base64url-encoded.
func (rt *Runtime) localObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if err := rt.syncCatalog(ctx); err != nil {
		return rpc.ObjectList{}, err
	}
	recs, next, err := rt.catalog.ListObjects(class, after, limit)
	if err != nil {
		return rpc.ObjectList{}, err
	}
	out := rpc.ObjectList{Objects: []rpc.ObjectInfo{}, Cursor: base64.RawURLEncoding.EncodeToString([]byte(next))}
	for _, r := range recs {
		info, err := rt.Info(ctx, r.Class, r.Name)
		if err != nil {
			info = rpc.ObjectInfo{ID: r.ID, Class: r.Class, Name: r.Name, Partition: r.Partition, Owner: rt.cfg.NodeName}
		}
		out.Objects = append(out.Objects, info)
	}
	return out, nil
}

// Cluster describes the cluster (a one-node one without Raft).
func (rt *Runtime) Cluster(ctx context.Context) (rpc.ClusterInfo, error) {
	var info rpc.ClusterInfo
	if rt.cluster != nil {
		info = rt.cluster.Info()
	} else {
		info = rpc.ClusterInfo{
			Node: rt.cfg.NodeName, Leader: rt.cfg.NodeName, Epoch: 1, Partitions: rt.cfg.Partitions, ReplicationFactor: 1,
			Members: []rpc.Member{{Name: rt.cfg.NodeName, HTTP: rt.cfg.HTTPAddr, Status: "alive", Partitions: rt.cfg.Partitions, Primaries: rt.cfg.Partitions}},
		}
	}
	if rt.hist != nil {
		st := rt.hist.store.Stats()
		info.History = &rpc.HistoryInfo{Retention: rt.cfg.PITRRetention.String(), Bytes: st.Bytes, OldestRestorable: st.Oldest}
	}
	return info, nil
}

// Ready reports whether the node takes events.
func (rt *Runtime) Ready(ctx context.Context) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closing {
		return fmt.Errorf("%w: node is shutting down", apierr.ErrOwnerUnavailable)
	}
	if rt.catalog == nil {
		return fmt.Errorf("%w: node not started", apierr.ErrOwnerUnavailable)
	}
	if rt.cluster != nil {
		return rt.cluster.Ready()
	}
	return nil
}

// withStore runs fn as an event of the named object.
func (rt *Runtime) withStore(ctx context.Context, class, name string, fn func(inst *instance) error) error {
	ref, err := rt.ref(class, name)
	if err != nil {
		return err
	}
	return rt.run(ctx, ref, fn, nil)
}

// ListAlarms lists the scheduled alarms (the whole cluster's: every node
// holds the replicated schedule), by time then object ID.
func (rt *Runtime) ListAlarms(ctx context.Context, beforeMillis int64, cursor string, limit int) (rpc.AlarmList, error) {
	var afterAt int64
	var afterID string
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		at, id, ok := strings.Cut(string(raw), ":")
		n, perr := strconv.ParseInt(at, 10, 64)
		if err != nil || !ok || perr != nil {
			return rpc.AlarmList{}, fmt.Errorf("%w: invalid cursor", apierr.ErrBadRequest)
		}
		afterAt, afterID = n, id
	}
	all, err := rt.schedule.Alarms()
	if err != nil {
		return rpc.AlarmList{}, err
	}
	out := rpc.AlarmList{Alarms: []rpc.AlarmEntry{}}
	for _, a := range all {
		at := a.At.UnixMilli()
		if beforeMillis > 0 && at >= beforeMillis {
			continue
		}
		if cursor != "" && (at < afterAt || at == afterAt && a.ObjectID <= afterID) {
			continue
		}
		out.Alarms = append(out.Alarms, rpc.AlarmEntry{ID: a.ObjectID, Class: a.Class, Name: a.Name, Partition: a.Partition,
			At: at, Scheduled: a.Scheduled.UnixMilli(), Retry: a.Retry})
	}
	sort.Slice(out.Alarms, func(i, j int) bool {
		x, y := out.Alarms[i], out.Alarms[j]
		return x.At < y.At || x.At == y.At && x.ID < y.ID
	})
	if len(out.Alarms) > limit {
		out.Alarms = out.Alarms[:limit]
		last := out.Alarms[limit-1]
		out.Cursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.At, 10) + ":" + last.ID))
	}
	return out, nil
}

// PendingAlarms is the number of alarms armed on this node's timers.
func (rt *Runtime) PendingAlarms() int { return rt.timers.len() }
