package node

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication/history"
)

// Replicator ships a partition's commits to its replicas; package
// cluster implements it.
type Replicator interface {
	// Replicate sends entry, a commit of partition p made here, to p's
	// replicas. The wait it returns ends once the in-sync replicas have
	// it durable (nil), or says why the write cannot be acknowledged.
	Replicate(p int, entry []byte) (wait func() error)
	// Writable says why a write of partition p could not be acknowledged
	// now (too few in-sync replicas), before it commits; nil if it could.
	Writable(p int) error
	// Confirm settles the writes of partition p whose wait failed: nil
	// once every one of them is on all of p's in-sync replicas (those
	// that missed one are out of the set) and this node still serves p,
	// else why not yet.
	Confirm(p int) error
}

// SetReplicator makes every commit's response wait for r as well as for
// the node log. Replication ships the log's records, so it needs the log.
func (rt *Runtime) SetReplicator(r Replicator) error {
	if !rt.cfg.NodeLog {
		return errors.New("replication needs the node log (--node-log)")
	}
	rt.replicator = r
	return nil
}

// replicaState is this node's side of the partitions it holds copies of
// without serving them: records are logged as they arrive, written into
// the copies in order, and the copies are synced (and the log told, so it
// can let the records go) now and then.
type replicaState struct {
	mu      sync.Mutex
	files   map[string]*replicaFile // copies written since their last sync
	tx      map[string]uint64       // last transaction in each copy, once known
	scratch []byte                  // pages unpacked for one write (applyPackedAt)
}

type replicaFile struct {
	f         *os.File
	partition int
	size      int64 // the file's size as written here (-1: not known)
}

// maxReplicaFiles bounds the copies held open between syncs.
const maxReplicaFiles = 256

// LogReplicated makes entries shipped here durable in the node log, with
// one sync, and pins them until their objects' copies are synced. A
// failure only leaves them unacknowledged (the primary drops this
// replica, which is seeded again): nothing was committed here.
func (rt *Runtime) LogReplicated(entries [][]byte) error {
	if rt.nlog == nil {
		return errors.New("replication needs the node log")
	}
	if rt.nlog.Low() {
		return fmt.Errorf("%w: node %s's disk has no room for its log", apierr.ErrStorageFull, rt.cfg.NodeName)
	}
	pos, err := rt.nlog.AppendMany(entries)
	if err != nil {
		return err
	}
	rt.logMu.Lock()
	defer rt.logMu.Unlock()
	for i, b := range entries {
		id, tx, ok := peekCommit(b)
		if !ok {
			continue
		}
		pin, pinned := rt.logPins[id]
		if !pinned {
			pin.pos = pos[i]
		}
		pin.tx = tx
		rt.logPins[id] = pin
	}
	return nil
}

// ApplyReplicated writes commits of partition p shipped here into this
// node's copies, in order. A commit a copy already reflects is skipped,
// so applying twice is harmless.
func (rt *Runtime) ApplyReplicated(p int, entries [][]byte) error {
	rs := &rt.replica
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, b := range entries {
		if len(b) < 5 || b[0] != entryCommit || int(binary.LittleEndian.Uint32(b[1:5])) != p {
			continue
		}
		id, c, err := commitForm(b)
		if err != nil {
			return fmt.Errorf("apply replicated record: %w", err)
		}
		rf, tx, err := rt.replicaFileLocked(id, p)
		if err != nil {
			return err
		}
		if c.Rec.Tx <= tx {
			continue
		}
		if tx == 0 && !c.Whole() {
			if rf.size == 0 {
				// A commit on top of a copy this node does not have: applied,
				// it would make a file that is not a database.
				return fmt.Errorf("replica copy of %s is missing (transaction %d needs its earlier pages): it needs a snapshot", id, c.Rec.Tx)
			}
		}
		if c.Packed != nil {
			rf.size, err = applyPackedAt(rf.f, rf.size, c, &rs.scratch)
		} else {
			rf.size, err = c.Rec.ApplyAt(rf.f, rf.size)
		}
		if err != nil {
			return fmt.Errorf("apply replicated record of %s: %w", id, err)
		}
		rs.tx[id] = c.Rec.Tx
	}
	if len(rs.files) > maxReplicaFiles {
		rt.syncReplicasLocked(-1)
	}
	return nil
}

// replicaFileLocked opens object id's copy for writing (rs.mu held).
func (rt *Runtime) replicaFileLocked(id string, p int) (*replicaFile, uint64, error) {
	rs := &rt.replica
	if rs.files == nil {
		rs.files, rs.tx = map[string]*replicaFile{}, map[string]uint64{}
	}
	path := filepath.Join(rt.PartitionDir(p), id+".db")
	tx, known := rs.tx[id]
	if !known {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			n, err := objectstore.ReadTxNumber(path)
			if err != nil {
				return nil, 0, err
			}
			tx = n
		}
		rs.tx[id] = tx
	}
	if rf := rs.files[id]; rf != nil {
		return rf, tx, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, err
	}
	rf := &replicaFile{f: f, partition: p, size: -1}
	if st, err := f.Stat(); err == nil {
		rf.size = st.Size()
	}
	rs.files[id] = rf
	return rf, tx, nil
}

// SyncReplicas syncs the copies written since their last sync and notes
// in the log that they hold their records (so the log can let them go).
func (rt *Runtime) SyncReplicas() {
	rt.replica.mu.Lock()
	defer rt.replica.mu.Unlock()
	rt.syncReplicasLocked(-1)
}

// syncReplicasLocked syncs and closes the open copies of partition p (all
// with -1); rs.mu held. A copy that cannot be synced keeps its records
// pinned in the log, where recovery finds them.
func (rt *Runtime) syncReplicasLocked(p int) {
	rs := &rt.replica
	for id, rf := range rs.files {
		if p >= 0 && rf.partition != p {
			continue
		}
		err := rf.f.Sync()
		rf.f.Close()
		delete(rs.files, id)
		if err != nil {
			rt.log.Error("cannot sync a replica copy", "object", id, "err", err)
			continue
		}
		rt.logCheckpoint(id, rf.partition, rs.tx[id])
	}
}

// forgetReplicaLocked drops what is known of partition p's copies.
func (rt *Runtime) forgetReplicaLocked(p int) {
	rs := &rt.replica
	for id, rf := range rs.files {
		if rf.partition == p {
			rf.f.Close()
			delete(rs.files, id)
		}
	}
	for id := range rs.tx {
		if rt.partitionOf(id) == p {
			delete(rs.tx, id)
		}
	}
}

// InstallReplica makes the snapshot in dir this node's copy of partition
// p, then applies the commits shipped since it was taken (held, not yet
// logged: each copy skips what its snapshot has), and syncs the copies,
// so the copy holds every record it acknowledged before it counts as in
// sync.
func (rt *Runtime) InstallReplica(p int, dir string, held [][]byte) error {
	rs := &rt.replica
	rs.mu.Lock()
	rt.syncReplicasLocked(p)
	rt.forgetReplicaLocked(p)
	rs.mu.Unlock()
	// The copy replaced was a replica's, kept in step by records: it is
	// not worth keeping.
	if err := rt.adoptPartition(p, dir, ""); err != nil {
		return fmt.Errorf("install replica of partition %d: %w", p, err)
	}
	return rt.CatchUpReplica(p, held)
}

// CatchUpReplica applies commits held while partition p's copy was
// seeded, and syncs the copies: they were acknowledged without being
// logged here.
func (rt *Runtime) CatchUpReplica(p int, held [][]byte) error {
	if err := rt.ApplyReplicated(p, held); err != nil {
		return fmt.Errorf("catch up replica of partition %d: %w", p, err)
	}
	if err := rt.archiveHeld(p, held); err != nil {
		// The copy is whole; only its history misses these records.
		rt.log.Warn("history: cannot archive the records held while seeding", "partition", p, "err", err)
	}
	rs := &rt.replica
	rs.mu.Lock()
	rt.syncReplicasLocked(p)
	rs.mu.Unlock()
	return nil
}

// PromoteReplica readies this node's copy of partition p to be served:
// its copies synced and its objects in the catalog.
func (rt *Runtime) PromoteReplica(p int) error {
	rs := &rt.replica
	rs.mu.Lock()
	rt.syncReplicasLocked(p)
	rt.forgetReplicaLocked(p)
	rs.mu.Unlock()
	return rt.catalogPartition(p)
}

// SnapshotPartition writes a page-identical copy of every object of
// partition p, which this node serves, as a tar stream ended by END.
// Each object is copied while its event slot is held and its WAL is
// checkpointed, so the copy reflects exactly its commits so far: a
// replica that follows p's records from before the snapshot began skips
// those the copy has.
func (rt *Runtime) SnapshotPartition(ctx context.Context, p int, w io.Writer) error {
	dir := rt.PartitionDir(p)
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if _, ok := ObjectFileID(e.Name()); !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		class, name, err := objectstore.ReadIdentity(path)
		if errors.Is(err, objectstore.ErrNoIdentity) {
			// Its first activation never committed (refused, or failed):
			// it holds nothing, and its first commit, should one come,
			// reaches the replica whole.
			continue
		}
		if err != nil {
			return fmt.Errorf("snapshot partition %d: %w", p, err)
		}
		ref, err := rt.ref(class, name)
		if err != nil {
			return fmt.Errorf("snapshot partition %d: %s: %w", p, e.Name(), err)
		}
		err = rt.exclusive(ctx, ref, func(inst *instance) error {
			if inst.store != nil {
				if err := inst.store.Checkpoint(); err != nil {
					return err
				}
			} else if err := objectstore.CheckpointFile(path); err != nil {
				return err
			}
			return copyIntoTar(tw, path, e.Name())
		})
		if err != nil {
			return fmt.Errorf("snapshot partition %d: %w", p, err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "END", Mode: 0o600}); err != nil {
		return err
	}
	return tw.Close()
}

// copyIntoTar copies a file as it is into a tar stream.
func copyIntoTar(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size()}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, st.Size()); err != nil {
		return fmt.Errorf("%w: copy %s: %v", apierr.ErrInternal, name, err)
	}
	return nil
}

// applyPackedAt is objectstore.Record.ApplyAt for a commit whose pages
// are packed (in ascending order): each page is unpacked straight into
// the run buffer, reused from one commit to the next.
func applyPackedAt(f *os.File, size int64, c history.Timed, buf *[]byte) (int64, error) {
	return objectstore.ApplyPagesAt(f, size, c.Rec.PageSize, c.Rec.DBPages, c.Numbers, func(i int, dst []byte) error {
		_, err := objectstore.UnpackPageInto(dst, c.Packed[i])
		return err
	}, buf)
}

// wholeDatabase reports whether a record holds every page of its
// database: the first commit of an object made after a snapshot.
func wholeDatabase(r objectstore.Record) bool {
	for pg := uint32(1); pg <= r.DBPages; pg++ {
		if _, ok := r.Pages[pg]; !ok {
			return false
		}
	}
	return r.DBPages > 0
}
