package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication/nodedb"
)

// SetFence installs the check every event makes before it runs: an error
// (OWNER_UNAVAILABLE) refuses the event. The cluster uses it so a node
// only serves partitions the committed state gives it, ready.
func (rt *Runtime) SetFence(f func(partition int) error) {
	if f == nil {
		rt.fence.Store(nil)
		return
	}
	rt.fence.Store(&f)
}

// PartitionDir is where partition p's object files live.
func (rt *Runtime) PartitionDir(p int) string {
	return filepath.Join(rt.cfg.DataDir, "partitions", strconv.Itoa(p))
}

// ClosePartition waits until no event runs on partition p and closes its
// open databases. The fence must already refuse p, or new events would
// keep it busy.
func (rt *Runtime) ClosePartition(ctx context.Context, p int) error {
	for {
		var stores []*objectstore.Store
		busy := false
		rt.mu.Lock()
		for _, inst := range rt.objects {
			if inst.ref.partition != p {
				continue
			}
			if inst.refs > 0 {
				busy = true
				continue
			}
			if inst.store != nil {
				stores = append(stores, rt.evictLocked(inst))
			}
		}
		rt.mu.Unlock()
		for _, s := range stores {
			rt.closeStore(s)
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("close partition %d: events still running: %w", p, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// AdoptPartition takes in the files of a partition handed over by its
// previous owner: files (already verified) are moved from dir into place
// and their objects enter the catalog. Their alarms are in the replicated
// schedule already; the cluster arms them once the partition is ready.
func (rt *Runtime) AdoptPartition(p int, dir string) error {
	return rt.adoptPartition(p, dir, "stale")
}

// adoptPartition is AdoptPartition; the copy it replaces is set aside as
// why, or removed if why is empty.
func (rt *Runtime) adoptPartition(p int, dir, why string) error {
	dst := rt.PartitionDir(p)
	// Whatever this node still holds of p (a cancelled earlier handoff, a
	// copy from before it left) is not the object any more: set it aside
	// whole, so no file missing from the archive comes back to life.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.ClosePartition(ctx, p); err != nil {
		return err
	}
	if err := rt.setAside(p, why); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ok := ObjectFileID(e.Name()); !ok {
			continue
		}
		if err := objectstore.ReplaceFile(filepath.Join(dst, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	// The adopted files (synced) are the partition now.
	if err := rt.logPartitionReset(p); err != nil {
		return err
	}
	if err := rt.rebaseHistory(p); err != nil {
		// The files are the partition; its history resumes later.
		rt.log.Warn("history: cannot start the adopted partition's history", "partition", p, "err", err)
	}
	return rt.catalogPartition(p)
}

// catalogPartition records the objects of partition p's files in the
// catalog (for listings). A file that never committed its identity is
// not an object yet.
func (rt *Runtime) catalogPartition(p int) error {
	entries, err := os.ReadDir(rt.PartitionDir(p))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var recs []nodedb.ObjectRecord
	for _, e := range entries {
		id, ok := ObjectFileID(e.Name())
		if !ok {
			continue
		}
		class, name, err := objectstore.ReadIdentity(filepath.Join(rt.PartitionDir(p), e.Name()))
		if errors.Is(err, objectstore.ErrNoIdentity) {
			continue
		}
		if err != nil {
			return fmt.Errorf("catalog partition %d: %w", p, err)
		}
		recs = append(recs, nodedb.ObjectRecord{ID: id, Class: class, Name: name, Partition: p})
	}
	return rt.catalog.RecordObjects(recs)
}

// DropPartition forgets a partition handed to another node: its files
// move to <data>/handed-off (kept for the operator, never served again).
// Its alarms stay in the replicated schedule for the new owner; the
// cluster disarms them here when the partition stops being this node's.
func (rt *Runtime) DropPartition(ctx context.Context, p int) error {
	if err := rt.ClosePartition(ctx, p); err != nil {
		return err
	}
	if err := rt.setAside(p, "handed-off"); err != nil {
		return err
	}
	return rt.logPartitionReset(p)
}

// DropReplica removes this node's replica copy of partition p: it only
// followed another node's, which holds the partition.
func (rt *Runtime) DropReplica(ctx context.Context, p int) error {
	rs := &rt.replica
	rs.mu.Lock()
	rt.syncReplicasLocked(p)
	rt.forgetReplicaLocked(p)
	rs.mu.Unlock()
	if err := rt.ClosePartition(ctx, p); err != nil {
		return err
	}
	if err := rt.setAside(p, ""); err != nil {
		return err
	}
	return rt.logPartitionReset(p)
}

// setAside moves partition p's directory to <data>/handed-off/ (kept for
// the operator, never served) and forgets its catalog entries; with why
// empty it removes the directory instead.
func (rt *Runtime) setAside(p int, why string) error {
	rt.unconfirmed.forgetPartition(p)
	if err := rt.catalog.ForgetPartition(p); err != nil {
		return err
	}
	src := rt.PartitionDir(p)
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	if why == "" {
		return os.RemoveAll(src)
	}
	trash := filepath.Join(rt.cfg.DataDir, "handed-off", strconv.Itoa(p)+"-"+why+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.MkdirAll(filepath.Dir(trash), 0o755); err != nil {
		return err
	}
	return os.Rename(src, trash)
}

// ObjectFileID is the object ID of a file name "<id>.db" in a partition
// directory, if it is one.
func ObjectFileID(name string) (string, bool) {
	if len(name) != 64+3 || filepath.Ext(name) != ".db" {
		return "", false
	}
	return name[:64], true
}
