package node

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/fsutil"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication/history"
	"github.com/dura-dev/dura/replication/nodedb"
	"github.com/dura-dev/dura/rpc"
)

// A bookmark names one commit of one object: its transaction number (16
// hex digits, so an object's bookmarks sort in commit order as strings)
// and a tag of the object's ID (so one object's bookmark is not taken
// for another's).
func bookmarkOf(id string, tx uint64) string {
	return fmt.Sprintf("%016x-%08x", tx, crc32.ChecksumIEEE([]byte(id)))
}

func parseBookmark(id, b string) (uint64, error) {
	txs, tag, ok := strings.Cut(b, "-")
	tx, err := strconv.ParseUint(txs, 16, 64)
	if !ok || len(txs) != 16 || len(tag) != 8 || err != nil {
		return 0, fmt.Errorf("%w: %q is not a bookmark", apierr.ErrBadRequest, b)
	}
	if tag != fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(id))) {
		return 0, fmt.Errorf("%w: bookmark %s belongs to another object", apierr.ErrBadRequest, b)
	}
	return tx, nil
}

// errNoPITR answers history requests on a node that keeps none.
func (rt *Runtime) errNoPITR() error {
	return fmt.Errorf("%w: node %s keeps no history (point-in-time recovery is off: --pitr-retention 0, or --node-log=false)", apierr.ErrBadRequest, rt.cfg.NodeName)
}

// Bookmark names the object's latest commit, or with at (unix ms, not
// 0) its last commit at or before that time.
func (rt *Runtime) Bookmark(ctx context.Context, class, name string, at int64) (rpc.BookmarkResponse, error) {
	ref, err := rt.ref(class, name)
	if err != nil {
		return rpc.BookmarkResponse{}, err
	}
	if rt.hist == nil {
		return rpc.BookmarkResponse{}, rt.errNoPITR()
	}
	var out rpc.BookmarkResponse
	err = rt.exclusive(ctx, ref, func(inst *instance) error {
		c, err := rt.commitAt(inst, at)
		out = rpc.BookmarkResponse{Bookmark: bookmarkOf(ref.id, c.Tx), At: c.At}
		return err
	})
	return out, err
}

// commitAt finds the object's latest commit, or its last at or before at
// (object held).
func (rt *Runtime) commitAt(inst *instance, at int64) (history.Commit, error) {
	commits, err := rt.objectHistory(inst)
	if err != nil {
		return history.Commit{}, err
	}
	if at == 0 {
		return commits[len(commits)-1], nil
	}
	if window := rt.now().Add(-rt.cfg.PITRRetention).UnixMilli(); at < window {
		return history.Commit{}, fmt.Errorf("%w: %s is before the retention window of %s (the oldest restorable time is %s)",
			apierr.ErrBadRequest, fmtMillis(at), rt.cfg.PITRRetention, fmtMillis(max(window, commits[0].At)))
	}
	found := -1
	for i, c := range commits {
		if c.At <= at {
			found = i
		}
	}
	if found < 0 {
		return history.Commit{}, fmt.Errorf("%w: %s is before object %s/%s's history begins (its first restorable commit is at %s)",
			apierr.ErrBadRequest, fmtMillis(at), inst.ref.class, inst.ref.name, fmtMillis(commits[0].At))
	}
	return commits[found], nil
}

func fmtMillis(ms int64) string {
	return strconv.FormatInt(ms, 10) + " (" + time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) + ")"
}

// CurrentBookmark names the object's last commit (not the writes of the
// event running).
func (s *Storage) CurrentBookmark() (string, error) {
	st, err := s.st.store()
	if err != nil {
		return "", err
	}
	if s.st.rt.hist == nil {
		return "", s.st.rt.errNoPITR()
	}
	if st.TxNumber() == 0 {
		return "", fmt.Errorf("%w: object %s/%s has no commit yet", apierr.ErrBadRequest, s.st.inst.ref.class, s.st.inst.ref.name)
	}
	return bookmarkOf(s.st.inst.ref.id, st.TxNumber()), nil
}

// BookmarkForTime names the object's last commit at or before t.
func (s *Storage) BookmarkForTime(t time.Time) (string, error) {
	if _, err := s.st.store(); err != nil {
		return "", err
	}
	rt := s.st.rt
	if rt.hist == nil {
		return "", rt.errNoPITR()
	}
	c, err := rt.commitAt(s.st.inst, t.UnixMilli())
	if err != nil {
		return "", err
	}
	return bookmarkOf(s.st.inst.ref.id, c.Tx), nil
}

// RestoreBookmark brings the object back to bookmark b when the event
// commits: what the event wrote (and its alarm change) is discarded, and
// the object's tables, KV and alarm become what they were at b, as a new
// commit. The object restarts with its next event. It answers the
// bookmark that undoes the restore.
func (s *Storage) RestoreBookmark(b string) (string, error) {
	st, err := s.st.store()
	if err != nil {
		return "", err
	}
	rt, inst := s.st.rt, s.st.inst
	if rt.hist == nil {
		return "", rt.errNoPITR()
	}
	tx, err := rt.restoreTarget(inst, rpc.RestoreRequest{Bookmark: b})
	if err != nil {
		return "", err
	}
	inst.ev.restore = &tx
	return bookmarkOf(inst.ref.id, st.TxNumber()), nil
}

// objectHistory archives what the log holds and lists the object's
// restorable commits; an object with storage but no history yet gets one
// from its current database, unless an event is open on it (object
// held).
func (rt *Runtime) objectHistory(inst *instance) ([]history.Commit, error) {
	path := rt.path(inst.ref)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: object %s/%s has no storage yet", apierr.ErrNotFound, inst.ref.class, inst.ref.name)
	}
	if err := rt.archivePass(false); err != nil {
		return nil, err
	}
	commits, err := rt.hist.store.Commits(inst.ref.id)
	if err != nil {
		return nil, err
	}
	if _, refused := rt.hist.needBase.Load(inst.ref.id); (len(commits) == 0 || refused) && inst.ev == nil {
		if err := rt.logWholeDatabase(inst); err != nil {
			return nil, err
		}
		if err := rt.archivePass(false); err != nil {
			return nil, err
		}
		if commits, err = rt.hist.store.Commits(inst.ref.id); err != nil {
			return nil, err
		}
	}
	if len(commits) == 0 {
		return nil, fmt.Errorf("%w: object %s/%s has no commit yet", apierr.ErrBadRequest, inst.ref.class, inst.ref.name)
	}
	return commits, nil
}

// Restore brings the object back to a bookmark or a time as a new
// commit: its SQL tables, KV and alarm become what they were then. Its
// own event; the object restarts with its next one.
func (rt *Runtime) Restore(ctx context.Context, class, name string, req rpc.RestoreRequest) (rpc.RestoreResponse, error) {
	ref, err := rt.ref(class, name)
	if err != nil {
		return rpc.RestoreResponse{}, err
	}
	if rt.hist == nil {
		return rpc.RestoreResponse{}, rt.errNoPITR()
	}
	if (req.Bookmark == "") == (req.At == nil) {
		return rpc.RestoreResponse{}, fmt.Errorf("%w: give either \"bookmark\" or \"at\" (unix ms)", apierr.ErrBadRequest)
	}
	var out rpc.RestoreResponse
	err = rt.exclusive(ctx, ref, func(inst *instance) error {
		target, err := rt.restoreTarget(inst, req)
		if err != nil {
			return err
		}
		undo, err := rt.restoreLocked(inst, target)
		out = rpc.RestoreResponse{RestoredTo: bookmarkOf(ref.id, target), UndoBookmark: bookmarkOf(ref.id, undo)}
		return err
	})
	return out, err
}

// restoreTarget resolves a restore request to a transaction the
// object's history holds (object held).
func (rt *Runtime) restoreTarget(inst *instance, req rpc.RestoreRequest) (uint64, error) {
	if req.At != nil {
		if *req.At <= 0 {
			return 0, fmt.Errorf("%w: at must be unix milliseconds", apierr.ErrBadRequest)
		}
		c, err := rt.commitAt(inst, *req.At)
		return c.Tx, err
	}
	tx, err := parseBookmark(inst.ref.id, req.Bookmark)
	if err != nil {
		return 0, err
	}
	commits, err := rt.objectHistory(inst)
	if err != nil {
		return 0, err
	}
	for _, c := range commits {
		if c.Tx == tx {
			return tx, nil
		}
	}
	return 0, fmt.Errorf("%w: bookmark %s is not in object %s/%s's history (older than the retention window, or never committed)",
		apierr.ErrBadRequest, req.Bookmark, inst.ref.class, inst.ref.name)
}

// restoreLocked rebuilds the object as of transaction target and commits
// it as its next transaction (object held). It returns the transaction
// the restore replaced: the undo point.
func (rt *Runtime) restoreLocked(inst *instance, target uint64) (uint64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(rt.path(inst.ref)), ".restore-*.db")
	if err != nil {
		return 0, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := rt.hist.store.Materialize(inst.ref.id, target, tmp.Name()); err != nil {
		return 0, err
	}
	return rt.commitFile(inst, tmp.Name(), true)
}

// commitFile makes the database file at src (closed, opened by nothing)
// the object's next commit (object held): the pages that differ from its
// file, logged and shipped like any commit, then written into its file.
// With alarm, the object's alarm becomes the one src records. The object
// is closed; its next event activates it again. It returns the
// transaction number src replaced.
func (rt *Runtime) commitFile(inst *instance, src string, alarm bool) (uint64, error) {
	ref := inst.ref
	if inst.store != nil {
		rt.closeStore(inst.store)
		inst.store, inst.obj, inst.state = nil, nil, nil
		rt.closed(inst)
	}
	live := rt.path(ref)
	from := live
	var prev uint64
	if _, err := os.Stat(live); errors.Is(err, os.ErrNotExist) {
		from = ""
	} else {
		if err := objectstore.CheckpointFile(live); err != nil {
			return 0, err
		}
		if prev, err = objectstore.ReadTxNumber(live); err != nil {
			return 0, err
		}
	}
	at, hasAlarm, err := objectstore.PrepareRestore(src, prev+1)
	if err != nil {
		return 0, err
	}
	rec, err := objectstore.DiffRecord(from, src, prev+1)
	if err != nil {
		return 0, err
	}
	if r := rt.replicator; r != nil {
		if err := r.Writable(ref.partition); err != nil {
			return 0, apierr.NotExecuted(err)
		}
	}
	shipErr := rt.logRecords(ref, []objectstore.Record{rec})
	var logErr *logFailure
	if errors.As(shipErr, &logErr) {
		return 0, logErr.err
	}
	if err := applyToFile(live, rec); err != nil {
		// Logged: recovery brings the file forward; until then the node
		// must not serve it.
		rt.logFailed.Store(true)
		rt.log.Error("cannot write a logged commit into the object's file: this node takes no more events; restart it", "object", ref.id, "err", err)
		return 0, err
	}
	rt.logCheckpoint(ref.id, ref.partition, rec.Tx)
	if from == "" {
		rt.recordNew(ref)
	}
	if alarm {
		c := &alarmChange{del: true}
		if hasAlarm {
			c = &alarmChange{a: nodedb.Alarm{ObjectID: ref.id, Class: ref.class, Name: ref.name, Partition: ref.partition, At: at, Scheduled: at}}
		}
		if err := rt.applyAlarm(ref, c); err != nil {
			return prev, fmt.Errorf("%w: restore the alarm: %v", apierr.ErrInternal, err)
		}
	}
	return prev, shipErr
}

// applyToFile writes a record into a closed database file (created if
// missing) and syncs it; a WAL left beside it is removed first, as in
// recovery: its frames are older than the record.
func applyToFile(path string, rec objectstore.Record) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	err = rec.Apply(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(path))
	}
	return err
}
