package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/fsutil"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication/nodelog"
)

// The node log carries durability: an event's response is released once
// its commit's pages are in the log (group-committed with the other
// events' records), and objects' SQLite files sync only at checkpoints.
// Its entries:
const (
	// entryCommit is one commit of one object: its pages.
	entryCommit byte = 1
	// entryCheckpoint says an object's file (synced) holds its commits
	// through transaction number tx: recovery replays only later ones.
	// By number, not position: a store closing while the object's next
	// activation already commits must not cover those commits.
	entryCheckpoint byte = 2
	// entryPartition says a partition's files were replaced or set aside
	// (handoff, adoption): earlier entries of its objects are void.
	entryPartition byte = 3
	// entryObject says one object's file was replaced (import): its
	// earlier entries are void.
	entryObject byte = 4
)

// checkpointBytes is the WAL size past which an object is checkpointed
// after a commit, so its log records can go.
const checkpointBytes = 1 << 20

// logEntry is a decoded node log entry.
type logEntry struct {
	kind      byte
	id        string // object ID; empty for entryPartition
	partition int
	at        int64 // unix ms
	rec       objectstore.Record
	// numbers and packed: a commit's pages still packed (decodeEntryAs)
	numbers []uint32
	packed  [][]byte
}

// packedPages marks, in a commit entry's page count, pages packed
// (objectstore.AppendPackedPage); entries logged before packing have it clear.
const packedPages = 1 << 31

// encode lays an entry out: kind, partition, at, id (64 bytes or none),
// then for a checkpoint its tx, for a commit tx, page size, database
// pages, page count (with packedPages) and each page number with its
// packed image.
func (e *logEntry) encode() []byte {
	n := 1 + 4 + 8 + 1 + len(e.id)
	if e.kind == entryCommit {
		n += 8 + 4 + 4 + 4 + len(e.rec.Pages)*(4+256)
	}
	b := make([]byte, 0, n)
	b = append(b, e.kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(e.partition))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.at))
	b = append(b, byte(len(e.id)))
	b = append(b, e.id...)
	if e.kind == entryCheckpoint {
		return binary.LittleEndian.AppendUint64(b, e.rec.Tx)
	}
	if e.kind != entryCommit {
		return b
	}
	b = binary.LittleEndian.AppendUint64(b, e.rec.Tx)
	b = binary.LittleEndian.AppendUint32(b, uint32(e.rec.PageSize))
	b = binary.LittleEndian.AppendUint32(b, e.rec.DBPages)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.rec.Pages))|packedPages)
	for _, p := range e.rec.SortedPages() {
		b = binary.LittleEndian.AppendUint32(b, p)
		b = objectstore.AppendPackedPage(b, e.rec.Pages[p])
	}
	return b
}

var errBadEntry = errors.New("node log: malformed entry")

// peekCommit reads a commit entry's object and transaction number
// without decoding its pages (ok is false for other entries).
func peekCommit(b []byte) (id string, tx uint64, ok bool) {
	if len(b) < 14 || b[0] != entryCommit {
		return "", 0, false
	}
	idLen := int(b[13])
	if len(b) < 14+idLen+8 {
		return "", 0, false
	}
	return string(b[14 : 14+idLen]), binary.LittleEndian.Uint64(b[14+idLen:]), true
}

func decodeEntry(b []byte) (logEntry, error) { return decodeEntryAs(b, false) }

// decodeEntryAs decodes an entry; with keepPacked a commit's packed pages
// stay packed, in e.numbers and e.packed, and e.rec.Pages is not set.
func decodeEntryAs(b []byte, keepPacked bool) (logEntry, error) {
	var e logEntry
	if len(b) < 14 {
		return e, errBadEntry
	}
	e.kind = b[0]
	e.partition = int(binary.LittleEndian.Uint32(b[1:5]))
	e.at = int64(binary.LittleEndian.Uint64(b[5:13]))
	idLen := int(b[13])
	b = b[14:]
	if len(b) < idLen {
		return e, errBadEntry
	}
	e.id, b = string(b[:idLen]), b[idLen:]
	if e.kind == entryCheckpoint {
		if len(b) != 8 {
			return e, errBadEntry
		}
		e.rec.Tx = binary.LittleEndian.Uint64(b)
		return e, nil
	}
	if e.kind != entryCommit {
		return e, nil
	}
	if len(b) < 20 {
		return e, errBadEntry
	}
	e.rec.Tx = binary.LittleEndian.Uint64(b[0:8])
	e.rec.PageSize = int(binary.LittleEndian.Uint32(b[8:12]))
	e.rec.DBPages = binary.LittleEndian.Uint32(b[12:16])
	count := binary.LittleEndian.Uint32(b[16:20])
	b = b[20:]
	if count&packedPages != 0 {
		err := e.splitPacked(b, int(count&^packedPages))
		if err == nil && !keepPacked {
			err = e.unpack()
		}
		return e, err
	}
	if e.rec.PageSize < 512 || len(b) != int(count)*(4+e.rec.PageSize) {
		return e, errBadEntry
	}
	e.rec.Pages = make(map[uint32][]byte, count)
	for range count {
		e.rec.Pages[binary.LittleEndian.Uint32(b[0:4])] = b[4 : 4+e.rec.PageSize]
		b = b[4+e.rec.PageSize:]
	}
	return e, nil
}

// splitPacked finds count packed pages in b, which must hold exactly
// them in ascending page order, and keeps them packed.
func (e *logEntry) splitPacked(b []byte, count int) error {
	if e.rec.PageSize < 512 || e.rec.PageSize > 65536 || count > len(b)/5 {
		return errBadEntry
	}
	e.numbers, e.packed = make([]uint32, count), make([][]byte, count)
	for i := range count {
		if len(b) < 4 {
			return errBadEntry
		}
		no := binary.LittleEndian.Uint32(b[0:4])
		if i > 0 && no <= e.numbers[i-1] {
			return errBadEntry // pages are logged in ascending order
		}
		n, err := objectstore.PackedPageLen(b[4:], e.rec.PageSize)
		if err != nil {
			return err
		}
		e.numbers[i], e.packed[i] = no, b[4:4+n]
		b = b[4+n:]
	}
	if len(b) != 0 {
		return errBadEntry
	}
	return nil
}

// unpack makes e.rec.Pages of the pages splitPacked found.
func (e *logEntry) unpack() error {
	e.rec.Pages = make(map[uint32][]byte, len(e.numbers))
	for i, no := range e.numbers {
		page, _, err := objectstore.UnpackPage(e.packed[i], e.rec.PageSize)
		if err != nil {
			return err
		}
		e.rec.Pages[no] = page
	}
	e.numbers, e.packed = nil, nil
	return nil
}

// logAppend writes an entry and waits until it is durable.
func (rt *Runtime) logAppend(e *logEntry) (nodelog.Pos, error) {
	e.at = rt.now().UnixMilli()
	return rt.appendEncoded(e.encode())
}

// appendEncoded writes an encoded entry and waits until it is durable. A
// failure stops the node taking events: a commit SQLite holds but the
// log does not could come back out of order after a crash.
func (rt *Runtime) appendEncoded(b []byte) (nodelog.Pos, error) {
	pos, err := rt.nlog.Append(b)
	if err != nil {
		if rt.logFailed.CompareAndSwap(false, true) {
			rt.log.Error("node log append failed: this node takes no more events; restart it", "err", err)
		}
		return pos, fmt.Errorf("%w: node log: %v", apierr.ErrInternal, err)
	}
	return pos, nil
}

// logCommit logs the records of the commit just made, ships them to the
// partition's replicas meanwhile (the output gate waits for both), and
// checkpoints the object when its WAL has grown. Every record is logged
// even when shipping fails: SQLite holds them all.
func (rt *Runtime) logCommit(inst *instance) error {
	recs := inst.store.TakeRecords()
	shipErr := rt.logRecords(inst.ref, recs)
	var logErr *logFailure
	if errors.As(shipErr, &logErr) {
		return logErr.err
	}
	if err := rt.ensureHistoryBase(inst, recs); err != nil {
		// The commit is logged; the history only starts later.
		rt.log.Warn("history: cannot log the object's whole database", "class", inst.ref.class, "name", inst.ref.name, "err", err)
	}
	if len(recs) > 0 && inst.store.WALBytes() > checkpointBytes {
		if err := inst.store.Checkpoint(); err != nil {
			rt.log.Warn("checkpoint failed", "class", inst.ref.class, "name", inst.ref.name, "err", err)
			return shipErr
		}
		rt.logCheckpoint(inst.ref.id, inst.ref.partition, inst.store.TxNumber())
	}
	return shipErr
}

// logFailure is a node log append that failed (as opposed to shipping).
type logFailure struct{ err error }

func (f *logFailure) Error() string { return f.err.Error() }
func (f *logFailure) Unwrap() error { return f.err }

// logRecords logs an object's committed records in order, shipping each
// to the partition's replicas meanwhile, and pins them until the object
// is checkpointed. A failed append is a *logFailure; otherwise the first
// shipping error is returned once every record is logged.
func (rt *Runtime) logRecords(ref objectRef, recs []objectstore.Record) error {
	var shipErr error
	for i := range recs {
		e := &logEntry{kind: entryCommit, id: ref.id, partition: ref.partition, rec: recs[i], at: rt.now().UnixMilli()}
		b := e.encode()
		var wait func() error
		if r := rt.replicator; r != nil {
			wait = r.Replicate(ref.partition, b)
		}
		pos, err := rt.appendEncoded(b)
		if wait != nil {
			if werr := wait(); werr != nil && shipErr == nil {
				shipErr = werr
			}
		}
		if err != nil {
			return &logFailure{err}
		}
		rt.logMu.Lock()
		pin, ok := rt.logPins[ref.id]
		if !ok {
			pin.pos = pos
		}
		pin.tx = recs[i].Tx
		rt.logPins[ref.id] = pin
		rt.logMu.Unlock()
	}
	if shipErr != nil {
		rt.unconfirmed.add(ref)
	}
	return shipErr
}

// logCheckpoint notes that an object's file holds its commits through
// transaction tx. Its pin goes only if no later record came meanwhile.
func (rt *Runtime) logCheckpoint(id string, partition int, tx uint64) {
	rt.logVoid(&logEntry{kind: entryCheckpoint, id: id, partition: partition, rec: objectstore.Record{Tx: tx}})
}

// logObjectReset notes that an object's file was replaced whole.
func (rt *Runtime) logObjectReset(id string, partition int) {
	rt.logVoid(&logEntry{kind: entryObject, id: id, partition: partition})
}

// logVoid appends an entry that makes an object's earlier records
// unneeded, and releases its pin unless a later transaction (of the
// object's next activation, while this store closed) is logged too.
func (rt *Runtime) logVoid(e *logEntry) {
	if rt.nlog == nil {
		return
	}
	if _, err := rt.logAppend(e); err != nil {
		return // the records stay pinned and are replayed: safe
	}
	rt.logMu.Lock()
	if pin, ok := rt.logPins[e.id]; ok && (e.kind != entryCheckpoint || pin.tx <= e.rec.Tx) {
		delete(rt.logPins, e.id)
	}
	rt.logMu.Unlock()
	// Under a steady load segments fill in seconds: trim as pins move,
	// not only on the janitor's tick.
	rt.trimLog()
}

// logPin keeps the log from the first record an object logged since its
// last checkpoint; tx is the last transaction it logged.
type logPin struct {
	pos nodelog.Pos
	tx  uint64
}

// logPartitionReset notes that partition p's files were replaced or set
// aside: its objects' earlier records must never be replayed.
func (rt *Runtime) logPartitionReset(p int) error {
	if rt.nlog == nil {
		return nil
	}
	if _, err := rt.logAppend(&logEntry{kind: entryPartition, partition: p}); err != nil {
		return err
	}
	rt.logMu.Lock()
	for id := range rt.logPins {
		if rt.partitionOf(id) == p {
			delete(rt.logPins, id)
		}
	}
	rt.logMu.Unlock()
	return nil
}

// closeStore closes an object's database; with the node log it is
// checkpointed first (synced: the file then holds the store's commits,
// whichever other connection is open), which the log notes.
func (rt *Runtime) closeStore(s *objectstore.Store) error {
	if rt.nlog == nil || s.Parked() {
		return s.Close() // a parked store was checkpointed when parked
	}
	cerr := s.Checkpoint()
	tx := s.TxNumber()
	err := s.Close()
	if err == nil && cerr == nil {
		id := objectIDOfPath(s.Path())
		rt.logCheckpoint(id, rt.partitionOf(id), tx)
	}
	return err
}

// parkStore closes an idle store's connection, checkpointed first (and
// the checkpoint logged) as closeStore does; the store stays the
// object's, to be unparked by its next event.
func (rt *Runtime) parkStore(s *objectstore.Store) error {
	if rt.nlog == nil {
		return s.Park()
	}
	if err := s.Checkpoint(); err != nil {
		return err
	}
	tx := s.TxNumber()
	if err := s.Park(); err != nil {
		return err
	}
	id := objectIDOfPath(s.Path())
	rt.logCheckpoint(id, rt.partitionOf(id), tx)
	return nil
}

func objectIDOfPath(path string) string {
	id, _ := ObjectFileID(filepath.Base(path))
	return id
}

// trimLog removes the log segments no object needs any more: those
// before the first record of an object not checkpointed since.
func (rt *Runtime) trimLog() {
	if rt.nlog == nil {
		return
	}
	keep := nodelog.Pos{Segment: ^uint64(0)}
	rt.logMu.Lock()
	for _, p := range rt.logPins {
		if p.pos.Less(keep) {
			keep = p.pos
		}
	}
	rt.logMu.Unlock()
	if cur, ok := rt.archived(); ok && cur.Less(keep) {
		keep = cur // not yet in the history
	}
	if err := rt.nlog.RemoveBefore(keep); err != nil {
		rt.log.Warn("node log: cannot remove old segments", "err", err)
	}
}

// recoverFromLog brings every object's file forward to its last logged
// commit before the node serves: records after the object's last
// checkpoint (or its partition's last reset) are written into the file in
// order. Its WAL, if it survived, is removed first: its frames are either
// in the log or were never acknowledged, and left beside the file they
// would overlay pages the log brought forward.
func (rt *Runtime) recoverFromLog() error {
	start := time.Now()
	type mark struct {
		pos nodelog.Pos
		tx  uint64
	}
	since := map[string]mark{}         // object -> its last checkpoint
	voided := map[string]nodelog.Pos{} // object -> its last replacement
	reset := map[int]nodelog.Pos{}     // partition -> its last reset
	err := rt.nlog.Replay(nodelog.Pos{}, func(pos nodelog.Pos, b []byte) error {
		e, err := decodeEntry(b)
		if err != nil {
			return fmt.Errorf("at %+v: %w", pos, err)
		}
		switch e.kind {
		case entryCheckpoint:
			if m, ok := since[e.id]; !ok || e.rec.Tx >= m.tx {
				since[e.id] = mark{pos, e.rec.Tx}
			}
		case entryObject:
			voided[e.id] = pos
		case entryPartition:
			reset[e.partition] = pos
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node log recovery: %w", err)
	}
	files := map[string]*os.File{}
	lastTx := map[string]uint64{}
	dirs := map[string]bool{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	records := 0
	err = rt.nlog.Replay(nodelog.Pos{}, func(pos nodelog.Pos, b []byte) error {
		e, err := decodeEntry(b)
		if err != nil || e.kind != entryCommit {
			return err
		}
		// Covered by a checkpoint: an earlier transaction, or the same
		// one logged before the checkpoint note.
		if c, ok := since[e.id]; ok && (e.rec.Tx < c.tx || e.rec.Tx == c.tx && pos.Less(c.pos)) {
			return nil
		}
		if v, ok := voided[e.id]; ok && pos.Less(v) {
			return nil
		}
		if r, ok := reset[e.partition]; ok && pos.Less(r) {
			return nil
		}
		f := files[e.id]
		if f == nil {
			path := filepath.Join(rt.PartitionDir(e.partition), e.id+".db")
			for _, suffix := range []string{"-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			dirs[filepath.Dir(path)] = true
			if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
				return err
			}
			files[e.id] = f
		}
		records++
		lastTx[e.id] = e.rec.Tx
		return e.rec.Apply(f)
	})
	if err != nil {
		return fmt.Errorf("node log recovery: %w", err)
	}
	for id, f := range files {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("node log recovery: sync %s: %w", id, err)
		}
		if err := objectstore.QuickCheck(f.Name()); err != nil {
			rt.log.Error("node log recovery: an object failed its check after replay", "object", id, "err", err)
		}
	}
	if len(files) > 0 {
		rt.log.Info("node log recovery", "objects", len(files), "records", records, "took", time.Since(start))
	}
	for id := range files {
		rt.logCheckpoint(id, rt.partitionOf(id), lastTx[id])
	}
	for dir := range dirs {
		if err := fsutil.SyncDir(dir); err != nil {
			return fmt.Errorf("node log recovery: %w", err)
		}
	}
	rt.trimLog()
	return nil
}

// logStats are the node log's counters (zero without a log).
func (rt *Runtime) logStats() nodelog.Stats {
	if l := rt.nlog; l != nil { // set in Start, before metrics are served
		return l.Stats()
	}
	return nodelog.Stats{}
}

// partitionOf is the partition of an object ID on this runtime.
func (rt *Runtime) partitionOf(id string) int {
	return placement.PartitionOf(id, rt.cfg.Partitions)
}
