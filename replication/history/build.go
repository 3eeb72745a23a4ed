package history

import (
	"errors"
	"fmt"
	"os"
	"sort"
)

// Materialize writes object id's database as of transaction tx to dst
// (created or replaced; not synced): the snapshot of the generation that
// holds tx, with its records up to tx applied.
func (s *Store) Materialize(id string, tx uint64, dst string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.load(id)
	if err != nil {
		return err
	}
	_, err = s.buildFile(o, tx, dst, false)
	return err
}

// pageLoc is where a page's image is: the frame at off, its i-th page.
type pageLoc struct {
	off int64
	i   int
}

// buildPlan is the result of reading a generation's page numbers up to a
// transaction: the last image of each page still in the database, the
// smallest size the database had on the way (pages past it that were not
// written again since are gone), and its final size.
type buildPlan struct {
	last     map[uint32]pageLoc
	pageSize int64
	minPages uint32
	final    uint32
	found    bool
}

// buildFile writes o as of tx to dst (s.mu held), synced and renamed into
// place when durable. Each page is written once, with its last image: a
// generation may hold a million records of the same few pages.
func (s *Store) buildFile(o *object, tx uint64, dst string, durable bool) (int64, error) {
	var g *generation
	for i := len(o.gens) - 1; i >= 0; i-- {
		c := o.gens[i]
		if c.start > tx {
			continue
		}
		if err := s.scanned(o, c); err != nil {
			return 0, err
		}
		if tx <= c.lastTx && (c.base || tx > c.start) {
			g = c
		}
		break
	}
	if g == nil {
		return 0, fmt.Errorf("%w: transaction %d", ErrNoHistory, tx)
	}
	tmp := dst + ".tmp"
	var baseBytes int64
	var err error
	if g.base {
		baseBytes, err = copyFileSynced(g.basePath(o.dir), tmp)
	} else {
		err = os.WriteFile(tmp, nil, 0o644)
	}
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	plan := buildPlan{last: map[uint32]pageLoc{}, found: g.base && tx == g.start}
	if g.logBytes > 0 {
		lf, err := os.Open(g.logPath(o.dir))
		if err != nil {
			return 0, err
		}
		defer lf.Close()
		if err := plan.read(lf, g.logBytes, tx, baseBytes); err != nil {
			return 0, err
		}
		if err := plan.apply(lf, f); err != nil {
			return 0, err
		}
	}
	if !plan.found {
		return 0, fmt.Errorf("%w: transaction %d", ErrNoHistory, tx)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// read walks the records of a generation's log (logBytes long) up to
// transaction tx, over a snapshot of baseBytes.
func (p *buildPlan) read(lf *os.File, logBytes int64, tx uint64, baseBytes int64) error {
	started := false
	var cur uint32
	err := eachFrame(lf, logBytes, func(h frameHead, off int64) error {
		if h.tx > tx {
			return errStopScan
		}
		if !started {
			started, p.pageSize = true, int64(h.pageSize)
			cur = uint32(baseBytes / p.pageSize)
			p.minPages = cur
		}
		if int64(h.pageSize) != p.pageSize {
			return fmt.Errorf("%w: page size changes from %d to %d", errBadFrame, p.pageSize, h.pageSize)
		}
		prefix := make([]byte, h.numbersEnd())
		if _, err := lf.ReadAt(prefix, off+8); err != nil {
			return err
		}
		nums, err := pageNumbers(h, prefix)
		if err != nil {
			return err
		}
		for i, pg := range nums {
			p.last[pg] = pageLoc{off: off, i: i}
		}
		if h.dbPages < cur {
			for pg := range p.last {
				if pg > h.dbPages {
					delete(p.last, pg) // cut off: a later growth reads zeros
				}
			}
		}
		cur = h.dbPages
		p.minPages = min(p.minPages, cur)
		p.final = cur
		p.found = p.found || h.tx == tx
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	return nil
}

// apply writes the plan's pages into f, one frame at a time, and sizes f.
func (p *buildPlan) apply(lf, f *os.File) error {
	if p.pageSize == 0 {
		return nil // no record up to the transaction
	}
	if err := f.Truncate(int64(p.minPages) * p.pageSize); err != nil {
		return err
	}
	byFrame := map[int64][]uint32{}
	for pg, loc := range p.last {
		byFrame[loc.off] = append(byFrame[loc.off], pg)
	}
	offs := make([]int64, 0, len(byFrame))
	for off := range byFrame {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	var hb [frameHeadSize]byte
	for _, off := range offs {
		if _, err := lf.ReadAt(hb[:], off); err != nil {
			return err
		}
		h := parseHead(hb[:])
		payload := make([]byte, h.n)
		if _, err := lf.ReadAt(payload, off+8); err != nil {
			return err
		}
		rec, err := decodeRecord(h, payload)
		if err != nil {
			return err
		}
		for _, pg := range byFrame[off] {
			if _, err := f.WriteAt(rec.Pages[pg], int64(pg-1)*p.pageSize); err != nil {
				return err
			}
		}
	}
	return f.Truncate(int64(p.final) * p.pageSize)
}

// eachRecord calls fn with the head and offset of each record of g in
// order (s.mu held).
func (s *Store) eachRecord(o *object, g *generation, fn func(frameHead, int64) error) error {
	if g.logBytes == 0 {
		return nil
	}
	f, err := os.Open(g.logPath(o.dir))
	if err != nil {
		return err
	}
	defer f.Close()
	return eachFrame(f, g.logBytes, fn)
}

// eachFrame reads the frame heads of a log up to size bytes.
func eachFrame(f *os.File, size int64, fn func(frameHead, int64) error) error {
	var hb [frameHeadSize]byte
	for off := int64(0); off < size; {
		if _, err := f.ReadAt(hb[:], off); err != nil {
			return fmt.Errorf("history: %s: %w", f.Name(), err)
		}
		h := parseHead(hb[:])
		if err := fn(h, off); err != nil {
			return err
		}
		off += 8 + int64(h.n)
	}
	return nil
}
