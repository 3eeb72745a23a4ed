package node

import (
	"bytes"
	"context"
	"encoding/binary"
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

// A commit entry logged before pages were packed still decodes, and a
// packed one decodes to the same record.
func TestCommitEntriesPackedAndNot(t *testing.T) {
	page1, page2 := make([]byte, 512), make([]byte, 512)
	copy(page1[20:], "first page")
	for i := range page2 {
		page2[i] = byte(i)
	}
	rec := objectstore.Record{Tx: 7, PageSize: 512, DBPages: 2, Pages: map[uint32][]byte{1: page1, 2: page2}}
	e := logEntry{kind: entryCommit, id: "obj", partition: 5, at: 1234, rec: rec}
	packed := e.encode()

	// The layout before packing: the count without packedPages, whole images.
	var old []byte
	old = append(old, entryCommit)
	old = binary.LittleEndian.AppendUint32(old, 5)
	old = binary.LittleEndian.AppendUint64(old, 1234)
	old = append(old, 3)
	old = append(old, "obj"...)
	old = binary.LittleEndian.AppendUint64(old, 7)
	old = binary.LittleEndian.AppendUint32(old, 512)
	old = binary.LittleEndian.AppendUint32(old, 2)
	old = binary.LittleEndian.AppendUint32(old, 2)
	old = binary.LittleEndian.AppendUint32(old, 1)
	old = append(old, page1...)
	old = binary.LittleEndian.AppendUint32(old, 2)
	old = append(old, page2...)

	if len(packed) >= len(old) {
		t.Errorf("packed entry %d bytes, unpacked %d", len(packed), len(old))
	}
	for name, b := range map[string][]byte{"packed": packed, "unpacked": old} {
		got, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.id != "obj" || got.partition != 5 || got.at != 1234 || got.rec.Tx != 7 || got.rec.DBPages != 2 || len(got.rec.Pages) != 2 ||
			!bytes.Equal(got.rec.Pages[1], page1) || !bytes.Equal(got.rec.Pages[2], page2) {
			t.Fatalf("%s: decoded %+v", name, got)
		}
	}
	for _, bad := range [][]byte{packed[:len(packed)-1], append(packed, 0)} {
		if _, err := decodeEntry(bad); err == nil {
			t.Fatal("a packed entry cut short or with trailing bytes decoded")
		}
	}

	// The archiver takes either form: packed pages stay packed.
	for name, b := range map[string][]byte{"packed": packed, "unpacked": old} {
		id, tm, err := commitForm(b)
		if err != nil || id != "obj" || tm.At != 1234 || tm.Rec.Tx != 7 || tm.Rec.DBPages != 2 || tm.Rec.PageSize != 512 {
			t.Fatalf("%s: archived form %q %+v %v", name, id, tm.Rec, err)
		}
		pages := tm.Rec.Pages
		if name == "packed" {
			if tm.Rec.Pages != nil || len(tm.Numbers) != 2 || tm.Numbers[0] != 1 || tm.Numbers[1] != 2 {
				t.Fatalf("packed: numbers %v", tm.Numbers)
			}
			pages = map[uint32][]byte{}
			for i, img := range tm.Packed {
				page, rest, err := objectstore.UnpackPage(img, 512)
				if err != nil || len(rest) != 0 {
					t.Fatalf("packed page %d: %v, %d bytes left", tm.Numbers[i], err, len(rest))
				}
				pages[tm.Numbers[i]] = page
			}
		}
		if !bytes.Equal(pages[1], page1) || !bytes.Equal(pages[2], page2) {
			t.Fatalf("%s: archived pages differ", name)
		}
	}
	// Pages out of order (never logged so) and damaged entries are refused.
	swapped := bytes.Clone(packed)
	i := bytes.Index(swapped, objectstore.AppendPackedPage(binary.LittleEndian.AppendUint32(nil, 2), page2))
	if i < 0 {
		t.Fatal("page 2 not found in the entry")
	}
	binary.LittleEndian.PutUint32(swapped[i:], 1)
	for name, bad := range map[string][]byte{"cut short": packed[:len(packed)-1], "trailing bytes": append(bytes.Clone(packed), 0), "page numbers not ascending": swapped} {
		if _, _, err := commitForm(bad); err == nil {
			t.Fatalf("archived form of an entry with %s", name)
		}
	}
}
