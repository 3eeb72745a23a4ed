package node

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/rpc"
)

// capture is a Replicator that keeps what it is given.
type capture struct {
	mu      sync.Mutex
	entries [][]byte
}

func (c *capture) Replicate(p int, entry []byte) func() error {
	c.mu.Lock()
	c.entries = append(c.entries, bytes.Clone(entry))
	c.mu.Unlock()
	return func() error { return nil }
}

func (c *capture) Writable(int) error { return nil }

func (c *capture) Confirm(int) error { return nil }

// take returns the entries captured since the last take.
func (c *capture) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.entries
	c.entries = nil
	return out
}

func startRuntime(t *testing.T, dir string) *Runtime {
	t.Helper()
	rt, err := New(DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rt
}

func execSQL(t *testing.T, rt *Runtime, name, q string) [][]any {
	t.Helper()
	res, err := rt.SQL(context.Background(), "db", name, []rpc.Statement{{SQL: q}})
	if err != nil {
		t.Fatalf("%s on %s: %v", q, name, err)
	}
	return res[0].Rows
}

// untar writes a partition snapshot's files into dir.
func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "END" {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, h.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplicaSeededAndPromoted: a replica installs a snapshot of a
// partition plus the commits shipped while it was taken (one of which
// the snapshot already has), follows later commits, including an object
// created after the snapshot, and once promoted serves the same rows from
// files page-identical to the primary's.
func TestReplicaSeededAndPromoted(t *testing.T) {
	ctx := context.Background()
	primaryDir, replicaDir := t.TempDir(), t.TempDir()
	primary := startRuntime(t, primaryDir)
	ship := &capture{}
	if err := primary.SetReplicator(ship); err != nil {
		t.Fatal(err)
	}
	p := placement.PartitionOf(placement.ObjectID("db", "x"), primary.Partitions())
	other := ""
	for i := 0; other == ""; i++ {
		if n := fmt.Sprintf("y%d", i); placement.PartitionOf(placement.ObjectID("db", n), primary.Partitions()) == p {
			other = n
		}
	}

	execSQL(t, primary, "x", "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
	execSQL(t, primary, "x", "INSERT INTO t (v) VALUES ('before the snapshot')")
	beforeSnapshot := ship.take()
	// A file whose object's first activation never committed (refused
	// for want of in-sync replicas): nothing to copy, and no reason to
	// fail the snapshot.
	ghost := filepath.Join(primaryDir, "partitions", itoa(p), placement.ObjectID("db", "ghost")+".db")
	if err := os.WriteFile(ghost, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := primary.SnapshotPartition(ctx, p, &snap); err != nil {
		t.Fatal(err)
	}
	execSQL(t, primary, "x", "INSERT INTO t (v) SELECT 'after ' || hex(randomblob(2000)) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)")
	held := append(beforeSnapshot[len(beforeSnapshot)-1:], ship.take()...)

	replica := startRuntime(t, replicaDir)
	in := t.TempDir()
	untar(t, &snap, in)
	if err := replica.InstallReplica(p, in, held); err != nil {
		t.Fatal(err)
	}
	// Following: commits shipped one batch at a time, logged then applied.
	for _, q := range []string{"UPDATE t SET v = 'updated' WHERE k = 1", "DELETE FROM t WHERE k = 2"} {
		execSQL(t, primary, "x", q)
	}
	execSQL(t, primary, other, "CREATE TABLE u (v); INSERT INTO u VALUES ('new after the snapshot')")
	stream := ship.take()
	if err := replica.LogReplicated(stream); err != nil {
		t.Fatal(err)
	}
	if err := replica.ApplyReplicated(p, stream); err != nil {
		t.Fatal(err)
	}
	// Applying again changes nothing.
	if err := replica.ApplyReplicated(p, stream); err != nil {
		t.Fatal(err)
	}
	if err := replica.PromoteReplica(p); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, q string }{{"x", "SELECT k, v FROM t ORDER BY k"}, {other, "SELECT v FROM u"}} {
		want, got := execSQL(t, primary, c.name, c.q), execSQL(t, replica, c.name, c.q)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: replica has %v, primary %v", c.name, got, want)
		}
	}
	primary.Close(ctx)
	replica.Close(ctx)
	for _, name := range []string{"x", other} {
		file := filepath.Join("partitions", itoa(p), placement.ObjectID("db", name)+".db")
		a, _ := os.ReadFile(filepath.Join(primaryDir, file))
		b, _ := os.ReadFile(filepath.Join(replicaDir, file))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("%s: the replica's file (%d bytes) is not the primary's (%d bytes)", name, len(b), len(a))
		}
		if err := objectstore.QuickCheck(filepath.Join(replicaDir, file)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestReplicaRefusesACommitWithoutItsBase: a commit of an object whose
// copy this replica lacks (no snapshot, not the object's first commit) is
// refused rather than written into a file that is not a database.
func TestReplicaRefusesACommitWithoutItsBase(t *testing.T) {
	primary := startRuntime(t, t.TempDir())
	defer primary.Close(context.Background())
	ship := &capture{}
	if err := primary.SetReplicator(ship); err != nil {
		t.Fatal(err)
	}
	execSQL(t, primary, "x", "CREATE TABLE t (v TEXT)")
	first := ship.take()
	execSQL(t, primary, "x", "INSERT INTO t VALUES ('later')")
	later := ship.take()
	p := placement.PartitionOf(placement.ObjectID("db", "x"), primary.Partitions())

	replica := startRuntime(t, t.TempDir())
	defer replica.Close(context.Background())
	if err := replica.ApplyReplicated(p, later); err == nil {
		t.Fatal("a later commit was applied to a copy the replica does not have")
	}
	// The object's first commits make a whole database: they apply.
	if err := replica.ApplyReplicated(p, append(first, later...)); err != nil {
		t.Fatalf("the object's commits from its first: %v", err)
	}
}

// gate is a Replicator whose partitions can be made unwritable (too few
// in-sync replicas).
type gate struct{ refuse atomic.Bool }

func (g *gate) Replicate(int, []byte) func() error { return func() error { return nil } }

func (g *gate) Confirm(p int) error { return g.Writable(p) }

func (g *gate) Writable(p int) error {
	if g.refuse.Load() {
		return fmt.Errorf("%w: partition %d has 1 in-sync replicas and writes need 2", apierr.ErrOwnerUnavailable, p)
	}
	return nil
}

// tallyClass counts rows: POST adds one, every request answers the
// count; runs, if set, counts the requests its handler ran.
func tallyClass(runs *atomic.Int32) Constructor {
	return func(st *State) (Object, error) {
		if _, err := st.Storage().Exec("CREATE TABLE IF NOT EXISTS n (v INTEGER)"); err != nil {
			return nil, err
		}
		return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
			if runs != nil {
				runs.Add(1)
			}
			if r.Method == http.MethodPost {
				if _, err := st.Storage().Exec("INSERT INTO n VALUES (1)"); err != nil {
					return err
				}
			}
			c, err := st.Storage().Exec("SELECT count(*) FROM n")
			if err != nil {
				return err
			}
			fmt.Fprint(w, c.Raw()[0][0])
			return nil
		}}, nil
	}
}

// Reads go on while a partition cannot take writes, including reads that
// activate an object whose constructor creates its tables "IF NOT
// EXISTS" (the failover found every object of a promoted partition
// unavailable until its other replica was seeded again).
func TestReadsGoOnWhenWritesCannotBeAcknowledged(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) { c.MaxOpenFiles = FilesPerObject }, map[string]Constructor{
		"tally": tallyClass(nil),
	})
	g := &gate{}
	if err := rt.SetReplicator(g); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, _, err := call(t, rt, "tally", name, "POST", "/", ""); err != nil {
			t.Fatal(err)
		}
	}
	// With room for one open object, "a" was closed when "b" opened.
	g.refuse.Store(true)
	if _, body, err := call(t, rt, "tally", "a", "GET", "/", ""); err != nil || body != "1" {
		t.Fatalf("read through a fresh activation: %q %v", body, err)
	}
	_, _, err := call(t, rt, "tally", "a", "POST", "/", "")
	if !errors.Is(err, apierr.ErrOwnerUnavailable) || !apierr.IsNotExecuted(err) {
		t.Fatalf("a write: %v, want OWNER_UNAVAILABLE, not executed", err)
	}
	g.refuse.Store(false)
	if _, body, err := call(t, rt, "tally", "a", "GET", "/", ""); err != nil || body != "1" {
		t.Fatalf("after the refused write: %q %v", body, err)
	}
}

// TestApplyPackedAtAsApplyAt: a commit applied from its packed pages
// leaves a copy byte for byte as the same commit applied whole, over a
// copy holding other data, with runs, gaps, growth and truncation.
func TestApplyPackedAtAsApplyAt(t *testing.T) {
	const ps = 512
	page := func(fill byte, used int) []byte {
		b := make([]byte, ps)
		for i := range used {
			b[i] = fill + byte(i%7)
		}
		return b
	}
	long := map[uint32][]byte{}
	for p := uint32(1); p <= 600; p++ { // past objectstore.MaxApplyRun
		long[p] = page(byte(p), int(p%50))
	}
	for _, tc := range []struct {
		name    string
		pages   map[uint32][]byte
		dbPages uint32
	}{
		{"one page", map[uint32][]byte{2: page(1, 40)}, 6},
		{"a run and a gap", map[uint32][]byte{1: page(2, ps), 2: page(3, 10), 3: page(4, 0), 6: page(5, 100)}, 6},
		{"growing", map[uint32][]byte{7: page(6, 30), 8: page(7, 30)}, 8},
		{"truncating", map[uint32][]byte{1: page(8, 20)}, 3},
		{"a run longer than one write", long, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := objectstore.Record{Tx: 2, PageSize: ps, DBPages: tc.dbPages, Pages: tc.pages}
			b := (&logEntry{kind: entryCommit, id: "obj", partition: 1, rec: rec}).encode()
			_, c, err := commitForm(b)
			if err != nil || c.Packed == nil {
				t.Fatalf("commit form: %v, packed %v", err, c.Packed != nil)
			}
			before := bytes.Repeat([]byte{0xaa}, 6*ps)
			var got, want []byte
			for _, packed := range []bool{true, false} {
				path := filepath.Join(t.TempDir(), "copy.db")
				if err := os.WriteFile(path, before, 0o644); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				buf := bytes.Repeat([]byte{0x55}, 3*ps) // a used scratch buffer
				var size int64
				if packed {
					size, err = applyPackedAt(f, int64(len(before)), c, &buf)
					if cap(buf) > objectstore.MaxApplyRun {
						t.Errorf("the write buffer grew to %d bytes", cap(buf))
					}
				} else {
					size, err = rec.ApplyAt(f, int64(len(before)))
				}
				f.Close()
				if err != nil || size != int64(tc.dbPages)*ps {
					t.Fatalf("packed %v: size %d, %v", packed, size, err)
				}
				out, _ := os.ReadFile(path)
				if packed {
					got = out
				} else {
					want = out
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("copies differ: %d bytes from packed pages, %d from whole ones", len(got), len(want))
			}
		})
	}
}
