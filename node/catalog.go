package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication/nodedb"
)

// The catalog lists the objects stored on this node (for GET /v1/objects).
// New objects reach it in batches written in the background, so creating
// an object costs no extra fsync; each object file also records its own
// class and name, and after an unclean stop the catalog is completed from
// the files before the node serves.

const catalogFlushEvery = 50 * time.Millisecond

// recordNew queues a new object for the catalog. A listing first has the
// writer write what is queued (syncCatalog), so an object answered before
// a listing began is in it.
func (rt *Runtime) recordNew(ref objectRef) {
	rt.catalogCh <- recordOf(ref)
}

// catalogWriter writes queued records in batches until stop, then flushes
// what is left.
func (rt *Runtime) catalogWriter(stop <-chan struct{}) {
	tick := time.NewTicker(catalogFlushEvery)
	defer tick.Stop()
	var batch []nodedb.ObjectRecord
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := rt.catalog.RecordObjects(batch); err != nil {
			rt.log.Error("cannot write the object catalog; it is rebuilt from the files at the next start", "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case r := <-rt.catalogCh:
			batch = append(batch, r)
			if len(batch) >= 1024 {
				flush()
			}
		case <-tick.C:
			flush()
		case done := <-rt.catalogSync:
			batch = rt.queuedRecords(batch)
			flush()
			close(done)
		case <-stop:
			batch = rt.queuedRecords(batch)
			flush()
			return
		}
	}
}

// syncCatalog waits until every record queued before it was called is
// written. After the writer stopped (the node is closing) it returns at
// once: the listing then may miss what the close still writes.
func (rt *Runtime) syncCatalog(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case rt.catalogSync <- done:
	case <-rt.stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcileCatalog adds every object file the catalog lacks, reading the
// identity each file records. It runs at start after an unclean stop.
func (rt *Runtime) reconcileCatalog(ctx context.Context) error {
	root := filepath.Join(rt.cfg.DataDir, "partitions")
	var missing []nodedb.ObjectRecord
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		id, ok := strings.CutSuffix(d.Name(), ".db")
		if d.IsDir() || !ok || len(id) != 64 {
			return nil
		}
		if has, err := rt.catalog.HasObject(id); err != nil || has {
			return err
		}
		class, name, err := objectstore.ReadIdentity(path)
		if err != nil {
			rt.log.Warn("object file without identity left out of the catalog", "path", path, "err", err)
			return nil
		}
		if placement.ObjectID(class, name) != id {
			rt.log.Warn("object file whose identity does not match its name left out of the catalog", "path", path)
			return nil
		}
		missing = append(missing, nodedb.ObjectRecord{ID: id, Class: class, Name: name, Partition: placement.PartitionOf(id, rt.cfg.Partitions)})
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		rt.log.Info("object catalog completed from files", "added", len(missing))
	}
	return rt.catalog.RecordObjects(missing)
}

// drainCatalog writes whatever is still queued, after the writer stopped.
func (rt *Runtime) drainCatalog() {
	if err := rt.catalog.RecordObjects(rt.queuedRecords(nil)); err != nil {
		rt.log.Error("cannot write the object catalog; it is rebuilt from the files at the next start", "err", err)
	}
}

// queuedRecords appends to batch the records queued now, without waiting.
func (rt *Runtime) queuedRecords(batch []nodedb.ObjectRecord) []nodedb.ObjectRecord {
	for {
		select {
		case r := <-rt.catalogCh:
			batch = append(batch, r)
		default:
			return batch
		}
	}
}
