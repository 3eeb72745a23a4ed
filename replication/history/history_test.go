package history

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"

	"github.com/dura-dev/dura/objectstore"
)

const pageSize = 512

// model is a database of raw pages the tests change record by record,
// keeping every state to compare what the history rebuilds.
type model struct {
	pages  [][]byte
	states map[uint64][]byte // tx -> file bytes
	rng    *rand.Rand
}

func newModel(seed uint64) *model {
	return &model{states: map[uint64][]byte{}, rng: rand.New(rand.NewPCG(seed, 1))}
}

// commit changes a few pages (growing or shrinking the file now and
// then) and returns the record; whole makes it carry every page.
func (m *model) commit(tx uint64, whole bool) objectstore.Record {
	rec := objectstore.Record{Tx: tx, PageSize: pageSize, Pages: map[uint32][]byte{}}
	switch {
	case len(m.pages) == 0 || m.rng.IntN(5) == 0:
		m.pages = append(m.pages, make([]byte, pageSize))
	case len(m.pages) > 3 && m.rng.IntN(7) == 0:
		m.pages = m.pages[:len(m.pages)-1]
	}
	for range 1 + m.rng.IntN(3) {
		p := m.rng.IntN(len(m.pages))
		img := make([]byte, pageSize)
		used := pageSize
		if m.rng.IntN(2) == 0 {
			used = 40 // a mostly empty page, as SQLite's often are
		}
		for i := range used {
			img[i] = byte(m.rng.Uint32())
		}
		m.pages[p] = img
		rec.Pages[uint32(p+1)] = img
	}
	if whole {
		for i, img := range m.pages {
			rec.Pages[uint32(i+1)] = img
		}
	}
	rec.DBPages = uint32(len(m.pages))
	m.states[tx] = bytes.Join(m.pages, nil)
	return rec
}

func (m *model) file() []byte { return bytes.Join(m.pages, nil) }

func openStore(t *testing.T, dir string, retention time.Duration, minSnap int64) *Store {
	t.Helper()
	s, err := Open(Config{Dir: dir, Retention: retention, MinSnapshotBytes: minSnap})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkState rebuilds id as of tx and compares it with the model's.
func checkState(t *testing.T, s *Store, id string, tx uint64, want []byte) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "out.db")
	if err := s.Materialize(id, tx, dst); err != nil {
		t.Fatalf("materialize tx %d: %v", tx, err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("tx %d: rebuilt %d bytes differ from the %d committed", tx, len(got), len(want))
	}
}

func TestEveryCommitRebuiltAcrossFolds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		minSnap int64
		commits int
	}{
		{"one generation", 1 << 30, 40},
		{"many generations", 4 * pageSize, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, time.Hour, tc.minSnap)
			m := newModel(7)
			var rec5 objectstore.Record
			for tx := uint64(1); tx <= uint64(tc.commits); tx++ {
				rec := m.commit(tx, tx == 1)
				if tx == 5 {
					rec5 = rec
				}
				ok, err := s.Append("obj", int64(tx)*1000, rec)
				if err != nil || !ok {
					t.Fatalf("append %d: ok=%v err=%v", tx, ok, err)
				}
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			// A fresh store reads it all back from disk.
			s = openStore(t, dir, time.Hour, tc.minSnap)
			commits, err := s.Commits("obj")
			if err != nil {
				t.Fatal(err)
			}
			if len(commits) != tc.commits {
				t.Fatalf("%d commits listed, want %d", len(commits), tc.commits)
			}
			for i, c := range commits {
				if c.Tx != uint64(i+1) || c.At != int64(c.Tx)*1000 {
					t.Fatalf("commit %d is %+v", i, c)
				}
				checkState(t, s, "obj", c.Tx, m.states[c.Tx])
			}
			gens := len(s.objs["obj"].gens)
			if tc.minSnap < 1<<30 && gens < 3 {
				t.Fatalf("%d generations: records were not folded into snapshots", gens)
			}
			// A record archived again (after a crash) changes nothing.
			before := s.Stats().Bytes
			rec5.Pages = map[uint32][]byte{1: make([]byte, pageSize)}
			if _, err := s.Append("obj", 1, rec5); err != nil {
				t.Fatal(err)
			}
			if s.Stats().Bytes != before {
				t.Fatal("a record already held was archived again")
			}
			checkState(t, s, "obj", 5, m.states[5])
		})
	}
}

func TestFirstRecordMustHoldTheDatabase(t *testing.T) {
	s := openStore(t, t.TempDir(), time.Hour, 0)
	m := newModel(1)
	m.pages = make([][]byte, 8)
	for i := range m.pages {
		m.pages[i] = make([]byte, pageSize)
	}
	m.commit(1, false)
	m.commit(2, false)
	ok, err := s.Append("obj", 1, m.commit(3, false))
	if err != nil || ok {
		t.Fatalf("a partial first record: ok=%v err=%v, want refused", ok, err)
	}
	if has, _ := s.Has("obj"); has {
		t.Fatal("object has history after a refused record")
	}
	if ok, err := s.Append("obj", 2, m.commit(4, true)); err != nil || !ok {
		t.Fatalf("whole record: ok=%v err=%v", ok, err)
	}
	if err := s.Materialize("obj", 3, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("a commit before history began: %v, want ErrNoHistory", err)
	}
	checkState(t, s, "obj", 4, m.states[4])
}

func TestTrimKeepsTheWindow(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 100*time.Second, 4*pageSize)
	m := newModel(3)
	for tx := uint64(1); tx <= 300; tx++ {
		if _, err := s.Append("obj", int64(tx)*1000, m.commit(tx, tx == 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().Bytes
	now := time.UnixMilli(300 * 1000)
	st, err := s.Trim(now) // window: commits at 200 s and later
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes >= before || st.Bytes != fsutil.DirBytes(dir) {
		t.Fatalf("retained %d bytes (before %d, on disk %d)", st.Bytes, before, fsutil.DirBytes(dir))
	}
	if st.Oldest > 200*1000 || st.Oldest < 100*1000 {
		t.Fatalf("oldest restorable point at %d ms, want within a generation before 200 000", st.Oldest)
	}
	commits, err := s.Commits("obj")
	if err != nil {
		t.Fatal(err)
	}
	if commits[0].At != st.Oldest || commits[len(commits)-1].Tx != 300 {
		t.Fatalf("commits run %+v..%+v", commits[0], commits[len(commits)-1])
	}
	for tx := uint64(200); tx <= 300; tx++ {
		checkState(t, s, "obj", tx, m.states[tx])
	}
	if err := s.Materialize("obj", 2, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("a trimmed commit: %v", err)
	}
	// Unused through a trim period, the object is forgotten and read
	// again from disk when needed; a fresh store trims from file names.
	for range 2 {
		if _, err := s.Trim(now); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.objs) != 0 {
		t.Fatalf("%d objects still held after an unused trim period", len(s.objs))
	}
	checkState(t, s, "obj", 250, m.states[250])
	fresh := openStore(t, dir, 100*time.Second, 4*pageSize)
	again, err := fresh.Trim(now)
	if err != nil || again.Oldest != st.Oldest || again.Bytes != st.Bytes {
		t.Fatalf("a fresh store's trim: %+v %v, want %+v", again, err, st)
	}
	checkState(t, fresh, "obj", 201, m.states[201])
}

func TestRebaseReplacesLaterRecords(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, time.Hour, 1<<30)
	m := newModel(5)
	for tx := uint64(1); tx <= 10; tx++ {
		s.Append("obj", int64(tx), m.commit(tx, tx == 1))
	}
	// The node is seeded with another copy as of transaction 8 (its own
	// 8-10 were never acknowledged).
	other := newModel(99)
	for tx := uint64(1); tx <= 8; tx++ {
		other.commit(tx, false)
	}
	src := filepath.Join(t.TempDir(), "seed.db")
	if err := os.WriteFile(src, other.file(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Rebase("obj", 8, 800, src); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Append("obj", 900, other.commit(9, false)); err != nil || !ok {
		t.Fatalf("append after rebase: %v %v", ok, err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, time.Hour, 1<<30)
	checkState(t, s, "obj", 7, m.states[7])
	checkState(t, s, "obj", 8, other.states[8])
	checkState(t, s, "obj", 9, other.states[9])
	commits, _ := s.Commits("obj")
	if n := len(commits); n != 9 || commits[7] != (Commit{Tx: 8, At: 800}) {
		t.Fatalf("commits after rebase: %+v", commits)
	}
}

func TestTornTailCut(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, time.Hour, 1<<30)
	m := newModel(11)
	for tx := uint64(1); tx <= 5; tx++ {
		s.Append("obj", int64(tx), m.commit(tx, tx == 1))
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// A crash while the sixth record was written: half of it, garbled.
	log := filepath.Join(s.objectDir("obj"), "0000000000000000.log")
	rec6 := m.commit(6, false)
	frame := appendFrame(nil, 6, rec6)
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	frame[len(frame)/2] ^= 0xff
	f.Write(frame)
	f.Close()
	s = openStore(t, dir, time.Hour, 1<<30)
	commits, err := s.Commits("obj")
	if err != nil || len(commits) != 5 {
		t.Fatalf("after a torn record: %d commits, %v", len(commits), err)
	}
	// Archived again from the node log, it lands after the fifth.
	if ok, err := s.Append("obj", 6, rec6); err != nil || !ok {
		t.Fatal(ok, err)
	}
	checkState(t, s, "obj", 6, m.states[6])
	checkState(t, s, "obj", 5, m.states[5])
}

// packedTimed is rec as the node log hands it to the archiver: its pages
// packed, in page order.
func packedTimed(at int64, rec objectstore.Record) Timed {
	t := Timed{At: at, Rec: objectstore.Record{Tx: rec.Tx, PageSize: rec.PageSize, DBPages: rec.DBPages}}
	for _, p := range rec.SortedPages() {
		t.Numbers = append(t.Numbers, p)
		t.Packed = append(t.Packed, objectstore.AppendPackedPage(nil, rec.Pages[p]))
	}
	return t
}

// TestPackedTimedAsRecords: records handed over packed make the same
// history as the same records whole (the same frame where packing gains),
// and count as whole databases alike.
func TestPackedTimedAsRecords(t *testing.T) {
	sparse := objectstore.Record{Tx: 9, PageSize: pageSize, DBPages: 3, Pages: map[uint32][]byte{1: make([]byte, pageSize), 3: make([]byte, pageSize)}}
	if !bytes.Equal(appendPackedFrame(nil, packedTimed(5, sparse)), appendFrame(nil, 5, sparse)) {
		t.Fatal("a packed record's frame differs from the same record's")
	}
	for _, tc := range []struct {
		pages   []uint32
		dbPages uint32
		whole   bool
	}{
		{[]uint32{1, 2, 3}, 3, true},
		{[]uint32{1, 2, 3, 4}, 3, true}, // a truncating commit may carry more
		{[]uint32{1, 3}, 3, false},
		{[]uint32{2, 3}, 2, false},
		{[]uint32{1}, 0, false},
		{nil, 1, false},
	} {
		rec := objectstore.Record{Tx: 1, PageSize: pageSize, DBPages: tc.dbPages, Pages: map[uint32][]byte{}}
		for _, p := range tc.pages {
			rec.Pages[p] = make([]byte, pageSize)
		}
		if got, want := packedTimed(1, rec).Whole(), (Timed{Rec: rec}).Whole(); got != tc.whole || want != tc.whole {
			t.Errorf("pages %v of %d: packed whole %v, unpacked %v, want %v", tc.pages, tc.dbPages, got, want, tc.whole)
		}
	}
	// The same commits archived either way read back alike.
	m := newModel(7)
	a, b := openStore(t, t.TempDir(), time.Hour, 1<<10), openStore(t, t.TempDir(), time.Hour, 1<<10)
	for tx := uint64(1); tx <= 40; tx++ {
		rec := m.commit(tx, tx == 1)
		if ok, err := a.AppendAll("obj", []Timed{{At: int64(tx), Rec: rec}}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if ok, err := b.AppendAll("obj", []Timed{packedTimed(int64(tx), rec)}); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	for tx := uint64(1); tx <= 40; tx++ {
		checkState(t, a, "obj", tx, m.states[tx])
		checkState(t, b, "obj", tx, m.states[tx])
	}
}

func TestFramesRoundTrip(t *testing.T) {
	sparse := objectstore.Record{Tx: 9, PageSize: pageSize, DBPages: 3, Pages: map[uint32][]byte{1: make([]byte, pageSize), 3: make([]byte, pageSize)}}
	sparse.Pages[3][7] = 42
	dense := objectstore.Record{Tx: 10, PageSize: pageSize, DBPages: 1, Pages: map[uint32][]byte{1: make([]byte, pageSize)}}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range dense.Pages[1] {
		dense.Pages[1][i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name       string
		rec        objectstore.Record
		frame      []byte
		compressed bool // DEFLATE, as frames were written before packing
		packed     bool
		large      bool // random pages: packing cannot make them small
	}{
		{name: "sparse pages packed", rec: sparse, frame: appendFrame(nil, 1234, sparse), packed: true},
		{name: "random pages as they are", rec: dense, frame: appendFrame(nil, 1234, dense)},
		{name: "an older DEFLATE frame", rec: sparse, frame: deflateFrame(t, 1234, sparse), compressed: true},
		{name: "pages packed already", rec: sparse, frame: appendPackedFrame(nil, packedTimed(1234, sparse)), packed: true},
		{name: "pages packed already, packing gaining nothing", rec: dense, frame: appendPackedFrame(nil, packedTimed(1234, dense)), packed: true, large: true},
	} {
		b := tc.frame
		h := parseHead(b)
		if h.compressed != tc.compressed || h.packed != tc.packed || h.tx != tc.rec.Tx || h.at != 1234 || int(h.n) != len(b)-8 {
			t.Fatalf("%s: head %+v", tc.name, h)
		}
		if tc.packed && !tc.large && len(b) > 100 {
			t.Errorf("%s: %d bytes for two mostly empty pages", tc.name, len(b))
		}
		got, err := decodeRecord(h, b[8:])
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got.Pages) != len(tc.rec.Pages) || got.DBPages != tc.rec.DBPages {
			t.Fatalf("%s: decoded %d pages of %d", tc.name, len(got.Pages), got.DBPages)
		}
		for p, img := range tc.rec.Pages {
			if !bytes.Equal(got.Pages[p], img) {
				t.Fatalf("%s: page %d differs", tc.name, p)
			}
		}
		// A damaged frame is an error, never other pages.
		b[len(b)-3] ^= 0xff
		if _, err := decodeRecord(h, b[8:]); err == nil {
			t.Fatalf("%s: a damaged frame decoded", tc.name)
		}
	}
}

// deflateFrame writes rec's frame as frames were before packing: the
// images as one DEFLATE stream.
func deflateFrame(t *testing.T, at int64, rec objectstore.Record) []byte {
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	pages := rec.SortedPages()
	for _, p := range pages {
		w.Write(rec.Pages[p])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8, 64)
	b = binary.LittleEndian.AppendUint64(b, rec.Tx)
	b = binary.LittleEndian.AppendUint64(b, uint64(at))
	b = binary.LittleEndian.AppendUint32(b, uint32(rec.PageSize))
	b = binary.LittleEndian.AppendUint32(b, rec.DBPages)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pages))|compressedFlag)
	for _, p := range pages {
		b = binary.LittleEndian.AppendUint32(b, p)
	}
	b = append(b, z.Bytes()...)
	binary.LittleEndian.PutUint32(b, uint32(len(b)-8))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

func TestMissingRecordStopsTheHistoryUntilAWholeOne(t *testing.T) {
	s := openStore(t, t.TempDir(), time.Hour, 1<<30)
	m := newModel(21)
	for tx := uint64(1); tx <= 5; tx++ {
		s.Append("obj", int64(tx), m.commit(tx, tx == 1))
	}
	m.commit(6, false) // never reaches the history
	if ok, err := s.Append("obj", 7, m.commit(7, false)); err != nil || ok {
		t.Fatalf("a record after a gap: ok=%v err=%v, want refused", ok, err)
	}
	if ok, err := s.Append("obj", 8, m.commit(8, true)); err != nil || !ok {
		t.Fatalf("a whole record after the gap: ok=%v err=%v", ok, err)
	}
	s.Append("obj", 9, m.commit(9, false))
	for _, tx := range []uint64{5, 8, 9} {
		checkState(t, s, "obj", tx, m.states[tx])
	}
	for _, tx := range []uint64{6, 7} {
		if err := s.Materialize("obj", tx, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoHistory) {
			t.Fatalf("transaction %d, never archived: %v", tx, err)
		}
	}
	// Past the window, the generation before the gap goes.
	if _, err := s.Trim(time.UnixMilli(8).Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if commits, _ := s.Commits("obj"); len(commits) != 2 || commits[0].Tx != 8 {
		t.Fatalf("after the trim: %+v", commits)
	}
}

// AppendAll writes an object's records of an archive pass together; a
// batch may skip records held already, cross a gap and fold.
func TestAppendAllBatches(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, time.Hour, 8*pageSize)
	m := newModel(31)
	batch := func(from, to uint64, whole ...uint64) []Timed {
		var recs []Timed
		for tx := from; tx <= to; tx++ {
			recs = append(recs, Timed{At: int64(tx), Rec: m.commit(tx, slices.Contains(whole, tx))})
		}
		return recs
	}
	first := batch(1, 20, 1)
	if ok, err := s.AppendAll("obj", first); err != nil || !ok {
		t.Fatalf("first batch: ok=%v err=%v", ok, err)
	}
	// Records held already, then a gap (22 never arrives) closed by a
	// whole record.
	second := append(first[15:], batch(21, 21)...)
	m.commit(22, false)
	second = append(second, batch(23, 23)...)
	second = append(second, batch(24, 30, 24)...)
	if ok, err := s.AppendAll("obj", second); err != nil || !ok {
		t.Fatalf("second batch: ok=%v err=%v", ok, err)
	}
	if ok, err := s.AppendAll("obj", batch(31, 31)); err != nil || !ok {
		t.Fatalf("one more: ok=%v err=%v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, time.Hour, 8*pageSize)
	for _, tx := range []uint64{1, 7, 20, 21, 24, 29, 31} {
		checkState(t, s, "obj", tx, m.states[tx])
	}
	for _, tx := range []uint64{22, 23} {
		if err := s.Materialize("obj", tx, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoHistory) {
			t.Fatalf("transaction %d, after the gap: %v", tx, err)
		}
	}
	if o := s.objs["obj"]; len(o.gens) < 3 {
		t.Fatalf("%d generations: the batches should have folded", len(o.gens))
	}
}

// A batch whose write fails leaves the history as it was, so the same
// batch archived again is kept whole.
func TestAppendAllFailedWriteKeepsNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, time.Hour, 1<<30)
	m := newModel(32)
	var recs []Timed
	for tx := uint64(1); tx <= 6; tx++ {
		recs = append(recs, Timed{At: int64(tx), Rec: m.commit(tx, tx == 1)})
	}
	if _, err := s.AppendAll("obj", recs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // closes the log: the next write opens it
		t.Fatal(err)
	}
	odir := s.objectDir("obj")
	if err := os.Rename(odir, odir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(odir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAll("obj", recs[3:]); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
	os.Remove(odir)
	if err := os.Rename(odir+".away", odir); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.AppendAll("obj", recs[3:]); err != nil || !ok {
		t.Fatalf("again: ok=%v err=%v", ok, err)
	}
	for tx := uint64(1); tx <= 6; tx++ {
		checkState(t, s, "obj", tx, m.states[tx])
	}
}
