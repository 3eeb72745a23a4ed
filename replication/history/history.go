// Package history keeps the past of every object a node holds, for
// point-in-time recovery: each object's committed records, archived from
// the node log, in generations, each a page-identical snapshot (or none,
// when the generation's first record holds the whole database) followed
// by the records committed after it. A generation whose records outgrow
// its snapshot (and a floor) is folded: its snapshot with its records
// applied becomes the next generation's snapshot. Generations are dropped
// once a later snapshot is older than the retention, so any commit of the
// retention window can be rebuilt: a snapshot, then records up to it.
//
// On disk, under Dir/<id[:2]>/<id>/: "<start>.log" and, with a snapshot,
// "<start>-<at>.base", start being the generation's first transaction
// number (the snapshot's, or one before the first record's) and at the
// snapshot's commit time in unix ms, both 16 hex digits.
package history

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"
	"github.com/dura-dev/dura/objectstore"
)

// Config configures a history store.
type Config struct {
	// Dir holds the history (created if missing).
	Dir string
	// Retention is how far back every commit stays restorable.
	Retention time.Duration
	// MinSnapshotBytes is the least a generation's records hold before
	// they are folded into a new snapshot. Default 1 MiB.
	MinSnapshotBytes int64
	// Logger receives the store's messages; nil discards them.
	Logger *slog.Logger
}

// Commit is one restorable point of an object: its transaction number
// and commit time (unix ms).
type Commit struct {
	Tx uint64
	At int64
}

// ErrNoHistory is returned for an object, or a transaction of one, the
// history does not hold.
var ErrNoHistory = errors.New("no history")

// Store is a node's history. Its methods are safe for concurrent use.
type Store struct {
	cfg Config

	mu   sync.Mutex
	objs map[string]*object
	// files holds a few generation logs open for appending; dirty names
	// those written since the last Sync, which syncs and closes them.
	files  map[string]*os.File
	dirty  map[string]bool
	dirs   map[string]bool // directories with entries added since then
	bytes  int64           // retained
	oldest int64           // as of the last Trim
}

type object struct {
	dir  string
	gens []*generation // by start
	used bool          // since the last trim
}

type generation struct {
	start     uint64
	at        int64 // snapshot's commit time; 0 without one
	base      bool
	baseBytes int64
	logBytes  int64
	lastTx    uint64 // of its last record; start without records
	lastAt    int64
	firstAt   int64 // of its first record
	records   int
	scanned   bool // the fields above were read from the log
}

// oldest is the commit time of the generation's first restorable point.
func (g *generation) oldest() int64 {
	if g.base {
		return g.at
	}
	return g.firstAt
}

func (g *generation) logPath(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.log", g.start))
}

func (g *generation) basePath(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%016x-%016x.base", g.start, uint64(g.at)))
}

// Open opens the history in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if cfg.MinSnapshotBytes <= 0 {
		cfg.MinSnapshotBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	s := &Store{cfg: cfg, objs: map[string]*object{}, files: map[string]*os.File{}, dirty: map[string]bool{}, dirs: map[string]bool{}}
	s.bytes = fsutil.DirBytes(cfg.Dir)
	return s, nil
}

func (s *Store) objectDir(id string) string {
	prefix := id
	if len(prefix) > 2 {
		prefix = prefix[:2]
	}
	return filepath.Join(s.cfg.Dir, prefix, id)
}

// load reads an object's generations (s.mu held) and keeps them until
// the object goes unused for a trim period. An object without history
// has none. The last generation's log is checked frame by frame and cut
// after its last whole frame: a crash may leave a torn tail, whose
// records the node log still holds. Earlier generations are read when
// needed (scanned).
func (s *Store) load(id string) (*object, error) {
	if o, ok := s.objs[id]; ok {
		o.used = true
		return o, nil
	}
	o, err := s.list(id)
	if err != nil {
		return nil, err
	}
	if n := len(o.gens); n > 0 {
		if err := s.scanGeneration(o, o.gens[n-1], true); err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
	}
	o.used = true
	s.objs[id] = o
	return o, nil
}

// list reads an object's generations from their file names and sizes.
func (s *Store) list(id string) (*object, error) {
	o := &object{dir: s.objectDir(id)}
	entries, err := os.ReadDir(o.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	byStart := map[uint64]*generation{}
	gen := func(start uint64) *generation {
		g := byStart[start]
		if g == nil {
			g = &generation{start: start, lastTx: start}
			byStart[start] = g
		}
		return g
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".log"):
			start, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 16, 64)
			if err != nil {
				continue
			}
			g := gen(start)
			if info, err := e.Info(); err == nil {
				g.logBytes = info.Size()
			}
		case strings.HasSuffix(name, ".base"):
			a, b, ok := strings.Cut(strings.TrimSuffix(name, ".base"), "-")
			start, err1 := strconv.ParseUint(a, 16, 64)
			at, err2 := strconv.ParseUint(b, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				continue
			}
			g := gen(start)
			g.base, g.at = true, int64(at)
			if info, err := e.Info(); err == nil {
				g.baseBytes = info.Size()
			}
		}
	}
	for _, g := range byStart {
		o.gens = append(o.gens, g)
	}
	sort.Slice(o.gens, func(i, j int) bool { return o.gens[i].start < o.gens[j].start })
	return o, nil
}

// scanned reads a generation's record heads if not done yet (s.mu held).
func (s *Store) scanned(o *object, g *generation) error {
	if g.scanned {
		return nil
	}
	return s.scanGeneration(o, g, false)
}

// scanGeneration reads a generation's record headers for its counters;
// with check, every frame's checksum too, cutting the log after the last
// good one.
func (s *Store) scanGeneration(o *object, g *generation, check bool) error {
	f, err := os.OpenFile(g.logPath(o.dir), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		g.scanned = true
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	g.records, g.lastTx, g.lastAt = 0, g.start, g.at
	end, err := scanFrames(f, check, func(h frameHead, _ int64) error {
		if g.records == 0 {
			g.firstAt = h.at
		}
		g.lastTx, g.lastAt = h.tx, h.at
		g.records++
		return nil
	})
	if err != nil {
		return err
	}
	g.scanned = true
	if check {
		s.bytes -= g.logBytes - end
		if st, err := f.Stat(); err == nil && st.Size() > end {
			g.logBytes = end
			return f.Truncate(end)
		}
	}
	g.logBytes = end
	return nil
}

// Has reports whether the history holds object id: a snapshot or a
// record holding its whole database to start from.
func (s *Store) Has(id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.load(id)
	if err != nil {
		return false, err
	}
	return len(o.gens) > 0, nil
}

// Timed is a record to archive and its commit time (unix ms): Rec, or,
// when Packed is set, Rec's Tx, PageSize and DBPages with its pages
// already packed (objectstore.AppendPackedPage), Packed[i] being page
// Numbers[i], in ascending page order, as the node log keeps them: they
// are archived as they are, without unpacking and packing again.
type Timed struct {
	At      int64
	Rec     objectstore.Record
	Numbers []uint32
	Packed  [][]byte
}

// Whole says whether the record holds every page of its database.
func (t Timed) Whole() bool {
	if t.Packed == nil {
		return wholeDatabase(t.Rec)
	}
	n := t.Rec.DBPages
	if n == 0 || uint32(len(t.Numbers)) < n {
		return false
	}
	for i := range n {
		if t.Numbers[i] != i+1 {
			return false
		}
	}
	return true
}

// Append adds one record to an object's history; see AppendAll.
func (s *Store) Append(id string, at int64, rec objectstore.Record) (ok bool, err error) {
	return s.AppendAll(id, []Timed{{At: at, Rec: rec}})
}

// AppendAll adds an object's records, in commit order, to its history;
// records it already holds are skipped. ok is false when the last record
// could not be kept: one before it is missing (or the history is empty)
// and it does not hold the whole database, so the history resumes at the
// object's next whole record. The records of one generation go to its
// log in one write; on an error the history is as it was before the
// write that failed.
func (s *Store) AppendAll(id string, recs []Timed) (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.load(id)
	if err != nil {
		return false, err
	}
	var w pendingFrames
	for _, t := range recs {
		g, keep, err := s.generationFor(o, id, t, &w)
		if err != nil {
			return false, err
		}
		if ok = keep; !keep || t.Rec.Tx <= g.lastTx {
			continue
		}
		if w.g != g {
			w.g, w.saved, w.savedBytes = g, *g, s.bytes
		}
		before := len(w.buf)
		if t.Packed != nil {
			w.buf = appendPackedFrame(w.buf, t)
		} else {
			w.buf = appendFrame(w.buf, t.At, t.Rec)
		}
		frameLen := len(w.buf) - before
		if g.records == 0 {
			g.firstAt = t.At
		}
		g.lastTx, g.lastAt = t.Rec.Tx, t.At
		g.records++
		s.bytes += int64(frameLen)
		if g.logBytes+int64(len(w.buf)) > max(g.baseBytes, s.cfg.MinSnapshotBytes) {
			if err := s.flush(o, id, &w); err != nil {
				return false, err
			}
			if err := s.fold(id, o); err != nil {
				s.cfg.Logger.Warn("history: cannot fold records into a snapshot", "object", id, "err", err)
			}
		}
	}
	if err := s.flush(o, id, &w); err != nil {
		return false, err
	}
	return ok, nil
}

// pendingFrames are frames of one generation not yet written, and the
// generation as it was before them.
type pendingFrames struct {
	g          *generation
	buf        []byte
	saved      generation
	savedBytes int64
}

// flush writes w's frames at the end of their generation's log (s.mu
// held); if the write fails the generation is put back as it was.
func (s *Store) flush(o *object, id string, w *pendingFrames) error {
	if w.g == nil || len(w.buf) == 0 {
		w.g = nil
		return nil
	}
	g := w.g
	w.g = nil
	f, err := s.logFile(o, g, w.saved.records == 0)
	if err == nil {
		_, err = f.WriteAt(w.buf, g.logBytes)
	}
	if err != nil {
		*g, s.bytes = w.saved, w.savedBytes
		w.buf = w.buf[:0]
		return fmt.Errorf("history of %s: %w", id, err)
	}
	g.logBytes += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// generationFor is the generation rec goes to (s.mu held), started if
// needed; keep is false when rec cannot be kept (see AppendAll). Frames
// pending for the generation it ends are written first.
func (s *Store) generationFor(o *object, id string, t Timed, w *pendingFrames) (g *generation, keep bool, err error) {
	rec := t.Rec
	if len(o.gens) > 0 {
		g = o.gens[len(o.gens)-1]
		if rec.Tx <= g.lastTx+1 {
			return g, true, nil
		}
		// A record is missing in between: the history can only go on
		// from one that holds the whole database.
		if !t.Whole() {
			s.cfg.Logger.Warn("history: a record is missing; the object's history resumes at its next whole record", "object", id, "have", g.lastTx, "got", rec.Tx)
			return nil, false, nil
		}
		if err := s.flush(o, id, w); err != nil {
			return nil, false, err
		}
		if err := s.syncLog(g.logPath(o.dir)); err != nil {
			return nil, false, err
		}
	} else {
		if !t.Whole() || rec.Tx == 0 {
			return nil, false, nil
		}
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return nil, false, err
		}
		s.dirs[filepath.Dir(o.dir)] = true
	}
	g = &generation{start: rec.Tx - 1, lastTx: rec.Tx - 1}
	o.gens = append(o.gens, g)
	return g, true, nil
}

// maxOpenLogs bounds the generation logs held open between syncs: an
// archive pass may touch thousands of objects.
const maxOpenLogs = 8

// logFile opens a generation's log for appending (s.mu held); it is
// synced by the next Sync, with its directory when fresh (the log holds
// no record yet).
func (s *Store) logFile(o *object, g *generation, fresh bool) (*os.File, error) {
	path := g.logPath(o.dir)
	s.dirty[path] = true
	if f, ok := s.files[path]; ok {
		return f, nil
	}
	if len(s.files) >= maxOpenLogs {
		for p, f := range s.files {
			f.Close() // written, not synced: Sync opens it again
			delete(s.files, p)
			break
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if fresh {
		s.dirs[o.dir] = true
	}
	s.files[path] = f
	return f, nil
}

// syncLog syncs one generation log if it was written since the last
// Sync (s.mu held): a generation that stops being the last one is whole
// on disk, since only the last one's tail is checked when read.
func (s *Store) syncLog(path string) error {
	if !s.dirty[path] {
		return nil
	}
	f, ok := s.files[path]
	var err error
	if !ok {
		f, err = os.OpenFile(path, os.O_WRONLY, 0)
	}
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	delete(s.files, path)
	if err != nil {
		return fmt.Errorf("history: sync %s: %w", path, err)
	}
	delete(s.dirty, path)
	return nil
}

// forgetLog drops a generation log from the open and dirty sets (s.mu
// held): it is being cut or removed.
func (s *Store) forgetLog(path string) {
	if f, ok := s.files[path]; ok {
		f.Close()
		delete(s.files, path)
	}
	delete(s.dirty, path)
}

// fold starts a new generation whose snapshot is the object as of its
// last record (s.mu held).
func (s *Store) fold(id string, o *object) error {
	g := o.gens[len(o.gens)-1]
	if err := s.syncLog(g.logPath(o.dir)); err != nil {
		return err
	}
	next := &generation{start: g.lastTx, at: g.lastAt, base: true, lastTx: g.lastTx}
	n, err := s.buildFile(o, g.lastTx, next.basePath(o.dir), true)
	if err != nil {
		return err
	}
	next.baseBytes = n
	o.gens = append(o.gens, next)
	s.dirs[o.dir] = true
	s.bytes += n
	return nil
}

// Rebase makes the database file at path (holding the object through
// transaction tx, whose commit time is at) the start of a new generation:
// the object's file was replaced whole (seeded from a snapshot, imported).
// Records the history holds from tx on are dropped: the file replaced
// them (they were never acknowledged, or are the same commits).
func (s *Store) Rebase(id string, tx uint64, at int64, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.load(id)
	if err != nil {
		return err
	}
	if err := s.dropFrom(o, tx); err != nil {
		return err
	}
	if n := len(o.gens); n > 0 {
		if err := s.syncLog(o.gens[n-1].logPath(o.dir)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	s.dirs[filepath.Dir(o.dir)] = true
	g := &generation{start: tx, at: at, base: true, lastTx: tx}
	n, err := copyFileSynced(path, g.basePath(o.dir))
	if err != nil {
		return fmt.Errorf("history of %s: %w", id, err)
	}
	g.baseBytes = n
	o.gens = append(o.gens, g)
	s.dirs[o.dir] = true
	s.bytes += n
	return fsutil.SyncDir(o.dir)
}

// dropFrom removes what the history holds of o from transaction tx on
// (s.mu held).
func (s *Store) dropFrom(o *object, tx uint64) error {
	for len(o.gens) > 0 {
		g := o.gens[len(o.gens)-1]
		if g.start < tx || g.start == tx && !g.base && g.logBytes == 0 {
			break
		}
		if err := s.removeGeneration(o, g); err != nil {
			return err
		}
		o.gens = o.gens[:len(o.gens)-1]
	}
	if len(o.gens) == 0 {
		return nil
	}
	g := o.gens[len(o.gens)-1]
	if err := s.scanned(o, g); err != nil {
		return err
	}
	if g.lastTx < tx {
		return nil
	}
	// Cut the generation's log before its first record from tx on.
	path := g.logPath(o.dir)
	s.forgetLog(path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	cut := int64(-1)
	if _, err := scanFrames(f, false, func(h frameHead, off int64) error {
		if h.tx >= tx {
			cut = off
			return errStopScan
		}
		return nil
	}); err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	if cut < 0 {
		return nil
	}
	s.bytes -= g.logBytes - cut
	if err := f.Truncate(cut); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return s.scanGeneration(o, g, false) // its counters, as cut
}

func (s *Store) removeGeneration(o *object, g *generation) error {
	path := g.logPath(o.dir)
	s.forgetLog(path)
	for _, p := range []string{path, g.basePath(o.dir)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	s.bytes -= g.logBytes + g.baseBytes
	return nil
}

// Sync makes what was appended since the last Sync durable.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for path := range s.dirty {
		// A log that failed stays dirty: the cursor does not move past
		// its records until a sync succeeds.
		if err := s.syncLog(path); err != nil && first == nil {
			first = err
		}
	}
	for dir := range s.dirs {
		if err := fsutil.SyncDir(dir); err != nil && first == nil {
			first = fmt.Errorf("history: %w", err)
		}
		delete(s.dirs, dir)
	}
	if first == nil {
		first = fsutil.SyncDir(s.cfg.Dir)
	}
	return first
}

// Commits lists the restorable points of object id, in commit order:
// snapshots and records.
func (s *Store) Commits(id string) ([]Commit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.load(id)
	if err != nil {
		return nil, err
	}
	var out []Commit
	add := func(c Commit) {
		if len(out) == 0 || c.Tx > out[len(out)-1].Tx {
			out = append(out, c)
		}
	}
	for _, g := range o.gens {
		if g.base {
			add(Commit{Tx: g.start, At: g.at})
		}
		if err := s.eachRecord(o, g, func(h frameHead, _ int64) error {
			add(Commit{Tx: h.tx, At: h.at})
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Close syncs and closes what is open.
func (s *Store) Close() error { return s.Sync() }

// copyFileSynced copies src to dst through a synced temporary file
// renamed into place, and returns its size.
func copyFileSynced(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	tmp := dst + ".copy"
	out, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, nil
}
