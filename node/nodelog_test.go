package node

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication/nodelog"
	"github.com/dura-dev/dura/rpc"
)

// TestRecoveryCheckpointsByTransaction: a store that closes (and notes its
// checkpoint) while the object's next activation already committed a
// later transaction must not cover it: recovery replays by transaction
// number, so the later commit comes back even though its record precedes
// the checkpoint note in the log.
func TestRecoveryCheckpointsByTransaction(t *testing.T) {
	dir := t.TempDir()
	id := placement.ObjectID("db", "x")
	part := placement.PartitionOf(id, placement.DefaultPartitions)
	path := filepath.Join(dir, "partitions", itoa(part), id+".db")

	// Two commits captured from a scratch copy of the object.
	scratch := filepath.Join(t.TempDir(), "scratch.db")
	s, err := objectstore.Open(objectstore.Config{Path: scratch, Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []objectstore.Record
	for _, q := range []string{"CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('first')", "INSERT INTO t VALUES ('second')"} {
		s.Begin()
		if _, err := s.Exec(q); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, s.TakeRecords()...)
	}
	s.Close()
	if len(recs) != 2 || recs[0].Tx != 1 || recs[1].Tx != 2 {
		t.Fatalf("captured %d records", len(recs))
	}

	// On disk: the object's file as of tx 1; the log: both commits, then
	// the closing store's note that the file holds tx 1.
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, _ := os.Create(path)
	recs[0].Apply(f)
	f.Close()
	l, err := nodelog.Open(nodelog.Config{Dir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []logEntry{
		{kind: entryCommit, id: id, partition: part, rec: recs[0]},
		{kind: entryCommit, id: id, partition: part, rec: recs[1]},
		{kind: entryCheckpoint, id: id, partition: part, rec: objectstore.Record{Tx: 1}},
	} {
		if _, err := l.Append(e.encode()); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	cfg := DefaultConfig(dir)
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	res, err := rt.SQL(context.Background(), "db", "x", []rpc.Statement{{SQL: "SELECT count(*) FROM t"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := res[0].Rows[0][0]; n != int64(2) {
		t.Fatalf("%v rows after recovery, want 2 (the later transaction was covered by an earlier checkpoint)", n)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// peekCommit reads what decodeEntry reads, for commits only.
func TestPeekCommit(t *testing.T) {
	commit := logEntry{kind: entryCommit, id: "obj", partition: 3, rec: objectstore.Record{Tx: 42, PageSize: 512, DBPages: 1, Pages: map[uint32][]byte{1: make([]byte, 512)}}}
	id, tx, ok := peekCommit(commit.encode())
	if !ok || id != "obj" || tx != 42 {
		t.Fatalf("peekCommit = %q %d %v", id, tx, ok)
	}
	check := logEntry{kind: entryCheckpoint, id: "obj", rec: objectstore.Record{Tx: 42}}
	if _, _, ok := peekCommit(check.encode()); ok {
		t.Fatal("a checkpoint entry read as a commit")
	}
	if _, _, ok := peekCommit([]byte{entryCommit}); ok {
		t.Fatal("a short entry read as a commit")
	}
}
