package nodelog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

func openLog(t *testing.T, dir string, segBytes int64) *Log {
	t.Helper()
	l, err := Open(Config{Dir: dir, SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func replayAll(t *testing.T, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	if err := l.Replay(Pos{}, func(_ Pos, b []byte) error {
		out = append(out, append([]byte(nil), b...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAppendReplayAcrossSegments: records come back in order, across
// segment rollovers and a reopen, and appends continue after them.
func TestAppendReplayAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 4096)
	var want [][]byte
	for i := range 50 {
		rec := bytes.Repeat([]byte{byte(i)}, 100+i*37) // some larger than a segment
		if i == 20 {
			rec = bytes.Repeat([]byte{7}, 9000)
		}
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec)
	}
	if segs, _ := l.segments(); len(segs) < 3 {
		t.Fatalf("%d segments: no rollover tested", len(segs))
	}
	l.Close()
	l = openLog(t, dir, 4096)
	defer l.Close()
	if _, err := l.Append([]byte("after reopen")); err != nil {
		t.Fatal(err)
	}
	want = append(want, []byte("after reopen"))
	got := replayAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}

// TestGroupCommit: concurrent appenders share syncs.
func TestGroupCommit(t *testing.T) {
	l := openLog(t, t.TempDir(), 0)
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := l.Append([]byte(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	if st.Appends != 800 || st.Syncs >= st.Appends {
		t.Fatalf("%d appends in %d syncs: no group commit", st.Appends, st.Syncs)
	}
	t.Logf("%d appends in %d syncs (%.2f syncs per append)", st.Appends, st.Syncs, float64(st.Syncs)/float64(st.Appends))
}

// TestAppendMany: a batch lands in order, in one sync when nothing else
// is written, and an empty record refuses the whole batch.
func TestAppendMany(t *testing.T) {
	l := openLog(t, t.TempDir(), 4096)
	defer l.Close()
	var batch [][]byte
	for i := range 40 {
		batch = append(batch, bytes.Repeat([]byte{byte(i)}, 200))
	}
	pos, err := l.AppendMany(batch)
	if err != nil || len(pos) != len(batch) {
		t.Fatalf("AppendMany: %v, %d positions", err, len(pos))
	}
	for i := 1; i < len(pos); i++ {
		if !pos[i-1].Less(pos[i]) {
			t.Fatalf("positions out of order: %v then %v", pos[i-1], pos[i])
		}
	}
	got := replayAll(t, l)
	if len(got) != len(batch) {
		t.Fatalf("replayed %d records, want %d", len(got), len(batch))
	}
	for i := range got {
		if !bytes.Equal(got[i], batch[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if _, err := l.AppendMany([][]byte{[]byte("a"), nil}); err == nil {
		t.Fatal("a batch with an empty record was accepted")
	}
	if n := len(replayAll(t, l)); n != len(batch) {
		t.Fatalf("a refused batch left %d records, want %d", n, len(batch))
	}
}

// TestTornTailEndsTheLog: a frame cut short, or with a byte flipped,
// ends the log there on reopen; the records before it are intact and
// new appends follow them.
func TestTornTailEndsTheLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(f *os.File, pos Pos)
	}{
		{"flipped byte", func(f *os.File, pos Pos) { f.WriteAt([]byte{0xff}, pos.Offset+frameHeader+3) }},
		{"cut short", func(f *os.File, pos Pos) { f.WriteAt(make([]byte, 20), pos.Offset+frameHeader+5) }},
		{"length beyond the file", func(f *os.File, pos Pos) { f.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f}, pos.Offset) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, 0)
			var last Pos
			for i := range 5 {
				p, err := l.Append(bytes.Repeat([]byte{byte('a' + i)}, 40))
				if err != nil {
					t.Fatal(err)
				}
				last = p
			}
			l.Close()
			f, _ := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", last.Segment)), os.O_RDWR, 0)
			tc.harm(f, last)
			f.Close()
			l = openLog(t, dir, 0)
			defer l.Close()
			if got := replayAll(t, l); len(got) != 4 {
				t.Fatalf("replayed %d records past a torn one, want 4", len(got))
			}
			l.Append([]byte("next"))
			if got := replayAll(t, l); len(got) != 5 || string(got[4]) != "next" {
				t.Fatalf("after the torn tail: %d records", len(got))
			}
		})
	}
}

// TestStaleFramesOfAnEarlierUseAreNotRecords: frames left in a file from
// a segment of another generation never validate (the CRC covers the
// generation).
func TestStaleFramesOfAnEarlierUseAreNotRecords(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 0)
	l.Append([]byte("one"))
	l.Append([]byte("two"))
	l.Close()
	// Relabel segment 1 as segment 2: same bytes, another generation.
	b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", 1)))
	b[8] = 2
	os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", 2)), b, 0o644)
	l = openLog(t, dir, 0)
	defer l.Close()
	var second int
	l.Replay(Pos{Segment: 2}, func(Pos, []byte) error { second++; return nil })
	if second != 0 {
		t.Fatalf("%d stale frames read as records", second)
	}
}

// TestRemoveBefore drops whole segments before a position only.
func TestRemoveBefore(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 1024)
	defer l.Close()
	var positions []Pos
	for i := range 40 {
		p, _ := l.Append(bytes.Repeat([]byte{byte(i)}, 200))
		positions = append(positions, p)
	}
	keep := positions[25]
	if err := l.RemoveBefore(keep); err != nil {
		t.Fatal(err)
	}
	var first Pos
	n := 0
	l.Replay(Pos{}, func(p Pos, _ []byte) error {
		if n == 0 {
			first = p
		}
		n++
		return nil
	})
	if keep.Less(first) || first.Segment != keep.Segment {
		t.Fatalf("first record left at %+v, want the segment of %+v", first, keep)
	}
}

// TestLowOnSpace: when the disk has no room for the next segment, the
// log says so (Low) while the current one still has its reserve, appends
// in flight still land, and once there is room it moves on.
func TestLowOnSpace(t *testing.T) {
	var full atomic.Bool
	cfg := Config{Dir: t.TempDir(), SegmentBytes: 64 << 10}
	cfg.allocate = func(f *os.File, size int64) error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return preallocate(f, size)
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	full.Store(true)
	rec := bytes.Repeat([]byte{1}, 1000)
	n := 0
	for !l.Low() {
		if _, err := l.Append(rec); err != nil {
			t.Fatalf("append %d before the log was low: %v", n, err)
		}
		if n++; n > 100 {
			t.Fatal("the log never said it was low")
		}
	}
	for range 5 { // the reserve takes appends in flight
		if _, err := l.Append(rec); err != nil {
			t.Fatalf("append into the reserve: %v", err)
		}
	}
	segs, _ := l.segments()
	if len(segs) != 1 {
		t.Fatalf("%d segments: a failed allocation left a file", len(segs))
	}
	full.Store(false)
	testutil.PollTrue(t, 10*time.Second, "the log moves on once there is room", func() bool {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
		return !l.Low()
	})
	if got := len(replayAll(t, l)); got < n+6 {
		t.Fatalf("replayed %d records, want at least %d", got, n+6)
	}
}

// TestReadAcrossChunks: a scan reads a segment in chunks; records that
// cross a chunk's end, or are larger than a chunk, come back whole, and
// what a reader keeps stays as it was after later reads.
func TestReadAcrossChunks(t *testing.T) {
	l := openLog(t, t.TempDir(), 8<<20)
	defer l.Close()
	var want [][]byte
	for i := range 40 {
		size := 1000 + i*9973
		if i%13 == 5 {
			size = scanChunk + 3*i // larger than a chunk
		}
		rec := make([]byte, size)
		for j := range rec {
			rec[j] = byte(i*31 + j)
		}
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec)
	}
	var kept [][]byte
	if err := l.Read(Pos{}, l.Durable(), func(_ Pos, b []byte) error {
		kept = append(kept, b) // not copied: the scan must not reuse it
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != len(want) {
		t.Fatalf("read %d records, want %d", len(kept), len(want))
	}
	for i := range want {
		if !bytes.Equal(kept[i], want[i]) {
			t.Fatalf("record %d (%d bytes) differs", i, len(want[i]))
		}
		if cap(kept[i]) != len(kept[i]) {
			t.Fatalf("record %d can grow into the next one's bytes", i)
		}
	}
}
