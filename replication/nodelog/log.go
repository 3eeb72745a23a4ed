// Package nodelog is a node's append-only log with group commit: every
// object's committed transactions are appended as records to segment
// files, and one writer gathers every record that arrives while the
// previous sync runs, writes them together and syncs once, so one fsync
// serves many events. Segments are preallocated (a sync never changes a
// file's size, so fdatasync skips the metadata journal) and written with
// pwrite. Each frame carries a CRC32C over its segment's generation and
// its bytes: a torn or stale tail ends the log there.
package nodelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"
)

// Config configures a log.
type Config struct {
	// Dir holds the segment files (created if missing).
	Dir string
	// SegmentBytes is each segment's preallocated size; a record larger
	// than a segment gets a segment of its own size. Default 64 MiB.
	SegmentBytes int64
	// MaxBatchBytes bounds one group commit's write. Default 8 MiB.
	MaxBatchBytes int
	// Logger receives the log's own messages; nil discards them.
	Logger *slog.Logger

	// allocate reserves a segment's space (preallocate; tests replace it).
	allocate func(f *os.File, size int64) error
}

func (c Config) withDefaults() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 8 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.allocate == nil {
		c.allocate = preallocate
	}
	return c
}

// Pos is a place in the log: a segment and an offset in it. Positions
// sort in log order.
type Pos struct {
	Segment uint64
	Offset  int64
}

// Less reports whether p comes before q.
func (p Pos) Less(q Pos) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// ErrClosed is returned by a log that was closed.
var ErrClosed = errors.New("node log closed")

// frameHeader is length (4 bytes) then CRC32C (4 bytes) of the
// generation and the payload.
const frameHeader = 8

// segmentHeaderSize: magic, format version, generation.
const segmentHeaderSize = 16

var (
	segMagic = [4]byte{'D', 'L', 'O', 'G'}
	castag   = crc32.MakeTable(crc32.Castagnoli)
)

// Log is a node log. Append is safe for concurrent use; the other methods
// too unless they say otherwise.
type Log struct {
	cfg  Config
	wbuf []byte // the writer's batch buffer, kept between batches

	mu      sync.Mutex
	seg     *segment // being appended to
	end     Pos      // where the next frame goes
	closed  bool
	pending []*pendingAppend
	wake    chan struct{}
	done    chan struct{}

	syncs   uint64 // group commits made (fdatasync calls)
	appends uint64
	durable Pos // the end as of the last completed sync

	// low is set while the segment being appended to is past its
	// reserve and the next one could not be allocated: the disk is full.
	// Appends may still use the reserve; callers should stop committing
	// (Low). lowRetry is when the writer next tries to allocate.
	low      atomic.Bool
	lowRetry time.Time

	// current is the segment appended to (the writer moves it); oldest,
	// under trimMu, the first segment not yet removed. Segments are
	// numbered without gaps, so removal needs no directory listing.
	current atomic.Uint64
	trimMu  sync.Mutex
	oldest  uint64
}

type segment struct {
	seq  uint64
	f    *os.File
	size int64
}

type pendingAppend struct {
	payload []byte
	pos     Pos
	err     error
	ready   chan struct{}
}

// Open opens the log in cfg.Dir, finding its end: the last segment is
// read frame by frame until a frame that is empty, torn or of an older
// generation. Nothing acknowledged can be past that point.
func Open(cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open node log: %w", err)
	}
	l := &Log{cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{})}
	seqs, err := l.segments()
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		l.oldest = 1
		if err := l.startSegment(1, 0); err != nil {
			return nil, err
		}
	} else {
		l.oldest = seqs[0]
		l.current.Store(seqs[len(seqs)-1])
		last := seqs[len(seqs)-1]
		f, err := os.OpenFile(l.path(last), os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open node log: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		l.seg = &segment{seq: last, f: f, size: st.Size()}
		end, err := scanSegment(f, last, nil)
		if err != nil {
			f.Close()
			return nil, err
		}
		l.end = Pos{Segment: last, Offset: end}
	}
	l.durable = l.end
	go l.writer()
	return l, nil
}

func (l *Log) path(seq uint64) string {
	return filepath.Join(l.cfg.Dir, fmt.Sprintf("%016d.seg", seq))
}

// segments lists the segment numbers in the directory, in order.
func (l *Log) segments() ([]uint64, error) {
	entries, err := os.ReadDir(l.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("node log: %w", err)
	}
	var out []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// startSegment creates segment seq, preallocated to hold at least min
// bytes of frames, and makes it the one appended to (writer or Open only).
func (l *Log) startSegment(seq uint64, min int64) error {
	size := l.cfg.SegmentBytes
	if need := min + segmentHeaderSize; need > size {
		size = need
	}
	f, err := os.OpenFile(l.path(seq), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("node log segment: %w", err)
	}
	var h [segmentHeaderSize]byte
	copy(h[:4], segMagic[:])
	binary.LittleEndian.PutUint32(h[4:8], 1)
	binary.LittleEndian.PutUint64(h[8:16], seq)
	err = l.cfg.allocate(f, size)
	// A small disk: smaller segments, down to 1 MiB (or the record).
	for err != nil && size/2 >= max(min+segmentHeaderSize, 1<<20) {
		size /= 2
		err = l.cfg.allocate(f, size)
	}
	if err == nil {
		_, err = f.WriteAt(h[:], 0)
	}
	if err == nil {
		err = f.Sync() // the file's size and header, once
	}
	if err == nil {
		err = fsutil.SyncDir(l.cfg.Dir)
	}
	if err != nil {
		f.Close()
		os.Remove(l.path(seq)) // half made: never a segment to replay
		return fmt.Errorf("node log segment: %w", err)
	}
	if l.seg != nil {
		l.seg.f.Close()
	}
	l.seg = &segment{seq: seq, f: f, size: size}
	l.current.Store(seq)
	l.end = Pos{Segment: seq, Offset: segmentHeaderSize}
	return nil
}

// scanSegment reads segment seq's frames from its header on, calling fn
// (if not nil) for each, and returns the offset just past the last good
// frame.
func scanSegment(f *os.File, seq uint64, fn func(Pos, []byte) error) (int64, error) {
	return scanSegmentFrom(f, seq, segmentHeaderSize, fn)
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// scanSegmentFrom is scanSegment starting at off, which must be where a
// frame starts (or the header's end).
func scanSegmentFrom(f *os.File, seq uint64, off int64, fn func(Pos, []byte) error) (int64, error) {
	var h [segmentHeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil || [4]byte(h[:4]) != segMagic || binary.LittleEndian.Uint64(h[8:16]) != seq {
		return 0, fmt.Errorf("node log segment %d: bad header", seq)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	off = max(off, segmentHeaderSize)
	r := chunkReader{f: f, size: st.Size()}
	for {
		fh, ok := r.read(off, frameHeader)
		if !ok {
			return off, nil
		}
		n := binary.LittleEndian.Uint32(fh[0:4])
		if n == 0 || int64(n) > r.size-off-frameHeader {
			return off, nil // the end, or a length no frame here can have
		}
		payload, ok := r.read(off+frameHeader, int(n))
		if !ok {
			return off, nil // torn
		}
		if frameCRC(seq, payload) != binary.LittleEndian.Uint32(fh[4:8]) {
			return off, nil // torn, or a frame of the file's earlier use
		}
		if fn != nil {
			if err := fn(Pos{Segment: seq, Offset: off}, payload); err != nil {
				return off, err
			}
		}
		off += frameHeader + int64(n)
	}
}

// scanChunk is how much of a segment a scan reads at once: frames are
// small, and reading each with two calls of its own made the archiver's
// passes over the log one of a busy node's larger costs.
const scanChunk = 256 << 10

// maxKeptWriteBuffer bounds the buffer the writer keeps between batches.
const maxKeptWriteBuffer = 1 << 20

// chunkReader reads a segment in chunks. A chunk is never reused: the
// slices it hands out stay valid (callers keep records past the scan),
// each capped at its own end.
type chunkReader struct {
	f     *os.File
	size  int64 // of the file, when the scan began
	chunk []byte
	at    int64 // file offset of chunk[0]
}

// read returns the n bytes at off, or false if the file ends before.
func (r *chunkReader) read(off int64, n int) ([]byte, bool) {
	if off >= r.at && off+int64(n) <= r.at+int64(len(r.chunk)) {
		i := int(off - r.at)
		return r.chunk[i : i+n : i+n], true
	}
	size := min(max(int64(scanChunk), int64(n)), r.size-off)
	if size < int64(n) {
		return nil, false
	}
	buf := make([]byte, size)
	m, _ := r.f.ReadAt(buf, off)
	if m < n {
		return nil, false
	}
	r.chunk, r.at = buf[:m], off
	return r.chunk[:n:n], true
}

func frameCRC(seq uint64, payload []byte) uint32 {
	var g [8]byte
	binary.LittleEndian.PutUint64(g[:], seq)
	return crc32.Update(crc32.Checksum(g[:], castag), castag, payload)
}

// Append adds payload to the log and returns once it is durable (synced
// with the records that arrived with it), with its position.
func (l *Log) Append(payload []byte) (Pos, error) {
	if len(payload) == 0 {
		return Pos{}, errors.New("node log: empty record")
	}
	a := &pendingAppend{payload: payload, ready: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Pos{}, ErrClosed
	}
	l.pending = append(l.pending, a)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-a.ready
	return a.pos, a.err
}

// AppendMany adds payloads to the log in order and returns once all are
// durable (one sync for them and whatever arrived with them), with their
// positions.
func (l *Log) AppendMany(payloads [][]byte) ([]Pos, error) {
	as := make([]*pendingAppend, len(payloads))
	for i, p := range payloads {
		if len(p) == 0 {
			return nil, errors.New("node log: empty record")
		}
		as[i] = &pendingAppend{payload: p, ready: make(chan struct{})}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	l.pending = append(l.pending, as...)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	pos := make([]Pos, len(as))
	var err error
	for i, a := range as {
		<-a.ready
		pos[i] = a.pos
		if err == nil {
			err = a.err
		}
	}
	return pos, err
}

// writer is the one goroutine that writes: it takes every append waiting
// when the previous sync ended, writes them with one pwrite per segment
// and syncs once.
func (l *Log) writer() {
	defer close(l.done)
	for {
		l.mu.Lock()
		batch := l.pending
		l.pending = nil
		closed := l.closed
		l.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-l.wake
			continue
		}
		err := l.write(batch)
		for _, a := range batch {
			if a.err == nil {
				a.err = err
			}
			close(a.ready)
		}
	}
}

// write writes a batch and syncs it (writer only).
func (l *Log) write(batch []*pendingAppend) error {
	buf := l.wbuf[:0]
	defer func() {
		if cap(buf) <= maxKeptWriteBuffer {
			l.wbuf = buf[:0]
		}
	}()
	for i, a := range batch {
		need := int64(frameHeader + len(a.payload))
		if l.end.Offset+int64(len(buf))+need > l.seg.size || len(buf) > l.cfg.MaxBatchBytes {
			// Roll over: what is buffered goes to this segment first.
			if err := l.flush(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if l.end.Offset+need > l.seg.size {
				if err := l.seg.f.Sync(); err != nil {
					return fmt.Errorf("node log sync: %w", err)
				}
				if err := l.startSegment(l.seg.seq+1, need); err != nil {
					return err
				}
			}
		}
		batch[i].pos = Pos{Segment: l.seg.seq, Offset: l.end.Offset + int64(len(buf))}
		var h [frameHeader]byte
		binary.LittleEndian.PutUint32(h[0:4], uint32(len(a.payload)))
		binary.LittleEndian.PutUint32(h[4:8], frameCRC(l.seg.seq, a.payload))
		buf = append(buf, h[:]...)
		buf = append(buf, a.payload...)
	}
	if err := l.flush(buf); err != nil {
		return err
	}
	if err := fdatasync(l.seg.f); err != nil {
		return fmt.Errorf("node log sync: %w", err)
	}
	l.mu.Lock()
	l.syncs++
	l.appends += uint64(len(batch))
	l.durable = l.end
	l.mu.Unlock()
	l.rollEarly()
	return nil
}

// rollEarly moves to a new segment once the current one is down to its
// reserve (a quarter), while the reserve still has room for what is in
// flight: if the disk cannot give the new segment, the log says it is
// low (Low) before any append can fail, and tries again now and then
// (writer only).
func (l *Log) rollEarly() {
	if l.seg.size-l.end.Offset > l.seg.size/4 || time.Now().Before(l.lowRetry) {
		return
	}
	if err := l.seg.f.Sync(); err != nil {
		return
	}
	if err := l.startSegment(l.seg.seq+1, 0); err != nil {
		if !l.low.Swap(true) {
			l.cfg.Logger.Error("node log: no room for a new segment; writes are refused until the disk has room", "err", err)
		}
		l.lowRetry = time.Now().Add(time.Second)
		return
	}
	if l.low.Swap(false) {
		l.cfg.Logger.Info("node log: room again on the disk; writes resume")
	}
}

// Low reports whether the disk had no room for the log's next segment:
// what is left of the current one is a reserve for appends in flight, so
// new writes should be refused until it clears.
func (l *Log) Low() bool { return l.low.Load() }

// flush writes buf at the end of the current segment (writer only).
func (l *Log) flush(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := l.seg.f.WriteAt(buf, l.end.Offset); err != nil {
		return fmt.Errorf("node log write: %w", err)
	}
	l.end.Offset += int64(len(buf))
	return nil
}

// Stats are the log's counters since it was opened.
type Stats struct {
	Appends, Syncs uint64
}

// Stats reports appends and group commits so far.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Appends: l.appends, Syncs: l.syncs}
}

// Replay calls fn for every record from from on, in log order. Run it
// before appending (recovery); it reads what is on disk.
func (l *Log) Replay(from Pos, fn func(Pos, []byte) error) error {
	seqs, err := l.segments()
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq < from.Segment {
			continue
		}
		f, err := os.Open(l.path(seq))
		if err != nil {
			return fmt.Errorf("node log replay: %w", err)
		}
		_, err = scanSegment(f, seq, func(p Pos, b []byte) error {
			if p.Less(from) {
				return nil
			}
			return fn(p, b)
		})
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Durable is the end of the log as of its last sync: every record
// before it is on disk for good.
func (l *Log) Durable() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// Oldest is the position of the first record the log still holds.
func (l *Log) Oldest() Pos {
	l.trimMu.Lock()
	defer l.trimMu.Unlock()
	return Pos{Segment: l.oldest}
}

// Read calls fn for every record at or after from and before to, in log
// order, while appends go on: to should be at most Durable(), and the
// caller keeps the segments from from on (RemoveBefore) meanwhile.
func (l *Log) Read(from, to Pos, fn func(Pos, []byte) error) error {
	for seq := from.Segment; seq <= to.Segment; seq++ {
		f, err := os.Open(l.path(seq))
		if errors.Is(err, os.ErrNotExist) && seq < to.Segment {
			continue // a segment rolled over before it held anything
		}
		if err != nil {
			return fmt.Errorf("node log read: %w", err)
		}
		start := int64(0)
		if seq == from.Segment {
			start = from.Offset
		}
		_, err = scanSegmentFrom(f, seq, start, func(p Pos, b []byte) error {
			if !p.Less(to) {
				return errStop
			}
			return fn(p, b)
		})
		f.Close()
		if err != nil && err != errStop {
			return err
		}
	}
	return nil
}

// RemoveBefore deletes the segments whose every record comes before pos
// (each object was checkpointed past them).
func (l *Log) RemoveBefore(pos Pos) error {
	l.trimMu.Lock()
	defer l.trimMu.Unlock()
	upto := min(pos.Segment, l.current.Load())
	if upto <= l.oldest {
		return nil // nothing to remove: no I/O
	}
	for seq := l.oldest; seq < upto; seq++ {
		if err := os.Remove(l.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("node log: remove segment %d: %w", seq, err)
		}
		l.oldest = seq + 1
	}
	return fsutil.SyncDir(l.cfg.Dir)
}

// Close waits for the appends already made, then closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-l.done:
	case <-time.After(time.Minute):
		return errors.New("node log: writer did not stop")
	}
	return l.seg.f.Close()
}
