package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication/history"
	"github.com/dura-dev/dura/replication/nodelog"
)

// The history (Config.PITRRetention) keeps every object's past for
// point-in-time restores: an archiver follows the node log, copying each
// durable commit record, primaries' and replicas' alike, into the
// object's history (replication/history), and the log keeps its segments
// until they are archived. An object's history starts from a record
// holding its whole database: its first commit, a copy it was seeded
// with, or a whole record its primary logs with its next write once the
// archiver has refused its records (it held none, or missed one).

// archiveEvery is how often the archiver copies new log records; a
// bookmark or restore request archives at once.
const archiveEvery = 2 * time.Second

// syncHistoryEvery is how often the history is synced and the log
// released up to what it holds: a sync is an fsync per object written,
// and until then the log keeps the records (a crash archives them again).
const syncHistoryEvery = 30 * time.Second

// trimHistoryEvery is how often generations older than the retention go.
const trimHistoryEvery = 10 * time.Minute

type archive struct {
	store *history.Store
	// mu serialises passes and rebases.
	mu sync.Mutex
	// read: every record before it is in the history (mu held);
	// cursor: and synced there, so the log may drop it.
	read       nodelog.Pos
	cursor     atomic.Pointer[nodelog.Pos]
	cursorPath string
	lastSync   time.Time
	// needBase holds objects whose records the history refused (it does
	// not hold them yet, or missed a record): their primary logs a whole
	// record with its next commit.
	needBase sync.Map
	lastTrim time.Time
}

// openHistory opens the history and its cursor (before recovery, which
// trims the log).
func (rt *Runtime) openHistory() error {
	if rt.cfg.PITRRetention <= 0 || rt.nlog == nil {
		return nil
	}
	dir := filepath.Join(rt.cfg.DataDir, "history")
	st, err := history.Open(history.Config{Dir: dir, Retention: rt.cfg.PITRRetention, Logger: rt.log})
	if err != nil {
		return err
	}
	a := &archive{store: st, cursorPath: filepath.Join(dir, "cursor")}
	cur := rt.nlog.Oldest()
	if b, err := os.ReadFile(a.cursorPath); err == nil && len(b) == 16 {
		saved := nodelog.Pos{Segment: binary.LittleEndian.Uint64(b[:8]), Offset: int64(binary.LittleEndian.Uint64(b[8:]))}
		if cur.Less(saved) {
			cur = saved
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("history cursor: %w", err)
	}
	a.cursor.Store(&cur)
	a.read, a.lastSync = cur, rt.now()
	rt.hist = a
	return nil
}

// archived is the log position before which every record is archived;
// the log keeps what follows.
func (rt *Runtime) archived() (nodelog.Pos, bool) {
	if rt.hist == nil {
		return nodelog.Pos{}, false
	}
	return *rt.hist.cursor.Load(), true
}

// archivePass copies every durable record past what the history holds
// into it; with sync, or once syncHistoryEvery has passed, it syncs the
// history and moves the cursor the log is trimmed by.
func (rt *Runtime) archivePass(sync bool) error {
	a := rt.hist
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return rt.archivePassLocked(sync)
}

func (rt *Runtime) archivePassLocked(sync bool) error {
	a := rt.hist
	if to := rt.nlog.Durable(); a.read.Less(to) {
		// An object's records are appended together: its history file
		// is opened once per pass, not once per record.
		byObject := map[string][]history.Timed{}
		var order []string
		err := rt.nlog.Read(a.read, to, func(pos nodelog.Pos, b []byte) error {
			if b[0] != entryCommit {
				return nil
			}
			id, t, err := commitForm(b)
			if err != nil {
				return fmt.Errorf("history: log record at %+v: %w", pos, err)
			}
			if _, ok := byObject[id]; !ok {
				order = append(order, id)
			}
			byObject[id] = append(byObject[id], t)
			return nil
		})
		if err != nil {
			return err
		}
		dropped := 0
		for _, id := range order {
			err := rt.archiveEntries(id, byObject[id])
			if errors.Is(err, syscall.ENOSPC) {
				// The disk is full: the history gives way to live data,
				// or the log could never drop these records and writes
				// would stay refused. The object's history resumes at
				// its next whole record.
				dropped += len(byObject[id])
				a.needBase.Store(id, true)
				continue
			}
			if err != nil {
				return err
			}
		}
		if dropped > 0 {
			rt.log.Warn("history: no room on the disk; records left out of the history", "records", dropped)
			sync = true // let the log drop them now
		}
		a.read = to
	}
	if !sync && rt.now().Sub(a.lastSync) < syncHistoryEvery {
		return nil
	}
	if err := a.store.Sync(); err != nil {
		return err
	}
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], a.read.Segment)
	binary.LittleEndian.PutUint64(buf[8:], uint64(a.read.Offset))
	if err := fsutil.WriteFileAtomic(a.cursorPath, buf[:], 0o644); err != nil {
		return fmt.Errorf("history cursor: %w", err)
	}
	synced := a.read
	a.cursor.Store(&synced)
	a.lastSync = rt.now()
	return nil
}

// commitForm is a commit entry of the node log as the history and the
// replicas take it: with its pages still packed when the entry has them
// packed (the history keeps them so; a replica unpacks them straight into
// its writes), only checked; else decoded.
func commitForm(b []byte) (id string, t history.Timed, err error) {
	if len(b) == 0 || b[0] != entryCommit {
		return "", t, errBadEntry
	}
	e, err := decodeEntryAs(b, true)
	if err != nil {
		return "", t, err
	}
	return e.id, history.Timed{At: e.at, Rec: e.rec, Numbers: e.numbers, Packed: e.packed}, nil
}

// archiveEntries archives an object's commit records, in order, in one
// write (hist.mu held).
func (rt *Runtime) archiveEntries(id string, recs []history.Timed) error {
	a := rt.hist
	ok, err := a.store.AppendAll(id, recs)
	if err != nil {
		return err
	}
	if ok {
		a.needBase.Delete(id)
	} else {
		a.needBase.Store(id, true)
	}
	return nil
}

// historyLoop archives and trims until stop closes.
func (rt *Runtime) historyLoop() {
	t := time.NewTicker(archiveEvery)
	defer t.Stop()
	for {
		select {
		case <-rt.stop:
			return
		case <-t.C:
		}
		if err := rt.archivePass(false); err != nil {
			rt.log.Warn("history: archiving failed; the log keeps the records", "err", err)
			continue
		}
		rt.trimLog()
		if a := rt.hist; rt.now().Sub(a.lastTrim) >= trimHistoryEvery {
			a.lastTrim = rt.now()
			if _, err := a.store.Trim(rt.now()); err != nil {
				rt.log.Warn("history: trimming failed", "err", err)
			}
		}
	}
}

// historyStats are the history's figures (zero without one).
func (rt *Runtime) historyStats() history.Stats {
	if a := rt.hist; a != nil { // set in Start, before metrics are served
		return a.store.Stats()
	}
	return history.Stats{}
}

// closeHistory archives what is left and closes the history.
func (rt *Runtime) closeHistory() {
	if rt.hist == nil {
		return
	}
	if err := rt.archivePass(true); err != nil {
		rt.log.Warn("history: last archiving failed; the log keeps the records", "err", err)
	}
	rt.hist.store.Close()
}

// ensureHistoryBase logs a record of the object's whole database after
// its commit when the archiver refused the object's records (it held no
// history of it, or missed a record): the history resumes from it. No
// I/O otherwise: the event path only reads a map.
func (rt *Runtime) ensureHistoryBase(inst *instance, recs []objectstore.Record) error {
	a := rt.hist
	if a == nil || len(recs) == 0 {
		return nil
	}
	if _, refused := a.needBase.Load(inst.ref.id); !refused {
		return nil
	}
	for _, r := range recs {
		if wholeDatabase(r) {
			a.needBase.Delete(inst.ref.id) // the archiver starts from it
			return nil
		}
	}
	return rt.logWholeDatabase(inst)
}

// logWholeDatabase logs the object's database as it is as one record of
// its last transaction, for its history to start from (object held).
func (rt *Runtime) logWholeDatabase(inst *instance) error {
	path := rt.path(inst.ref)
	if inst.store != nil {
		if err := inst.store.Checkpoint(); err != nil {
			return err
		}
	} else if err := objectstore.CheckpointFile(path); err != nil {
		return err
	}
	tx, err := objectstore.ReadTxNumber(path)
	if err != nil || tx == 0 {
		return err // never committed: nothing to start from
	}
	rec, err := objectstore.WholeRecord(path, tx)
	if err != nil {
		return err
	}
	rt.hist.needBase.Delete(inst.ref.id)
	var logErr *logFailure
	if err := rt.logRecords(inst.ref, []objectstore.Record{rec}); errors.As(err, &logErr) {
		return err
	}
	rt.logCheckpoint(inst.ref.id, inst.ref.partition, tx)
	return nil
}

// rebaseHistory starts the history of each object in partition p's files
// from the file: they were replaced whole (seeded, adopted). What the log
// holds from before is archived first, so nothing older lands on top.
func (rt *Runtime) rebaseHistory(p int) error {
	a := rt.hist
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := rt.archivePassLocked(false); err != nil {
		return err
	}
	dir := rt.PartitionDir(p)
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		id, ok := ObjectFileID(e.Name())
		if !ok {
			continue
		}
		if err := rt.rebaseObjectLocked(id, filepath.Join(dir, e.Name())); err != nil {
			rt.hist.needBase.Store(id, true)
			return err
		}
	}
	return nil
}

// rebaseObjectLocked starts id's history from its file at path (closed,
// checkpointed; hist.mu held).
func (rt *Runtime) rebaseObjectLocked(id, path string) error {
	tx, err := objectstore.ReadTxNumber(path)
	if err != nil {
		return err
	}
	if tx == 0 {
		return nil // never committed: its first commit starts its history
	}
	if err := rt.hist.store.Rebase(id, tx, rt.now().UnixMilli(), path); err != nil {
		return fmt.Errorf("history of %s: %w", id, err)
	}
	rt.hist.needBase.Delete(id)
	return nil
}

// archiveHeld archives commits applied to partition p's copies without
// being logged here (those shipped while its snapshot was taken).
func (rt *Runtime) archiveHeld(p int, held [][]byte) error {
	a := rt.hist
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range held {
		e, err := decodeEntry(b)
		if err != nil {
			return err
		}
		if e.kind != entryCommit || e.partition != p {
			continue
		}
		if err := rt.archiveEntries(e.id, []history.Timed{{At: e.at, Rec: e.rec}}); err != nil {
			return err
		}
	}
	return nil
}
