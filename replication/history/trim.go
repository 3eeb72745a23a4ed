package history

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Stats are a history's figures.
type Stats struct {
	// Bytes retained on disk.
	Bytes int64
	// Oldest is the commit time (unix ms) of the oldest restorable point
	// as of the last Trim; 0 before one, or with no history.
	Oldest int64
}

// Trim drops the generations no point of the retention window needs:
// each one followed by a snapshot committed before the window began (that
// snapshot serves the window's start). It reports the store's figures.
func (s *Store) Trim(now time.Time) (Stats, error) {
	window := now.Add(-s.cfg.Retention).UnixMilli()
	prefixes, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return Stats{}, fmt.Errorf("history trim: %w", err)
	}
	st := Stats{}
	for _, p := range prefixes {
		if !p.IsDir() {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(s.cfg.Dir, p.Name()))
		if err != nil {
			return st, fmt.Errorf("history trim: %w", err)
		}
		for _, e := range ids {
			if !e.IsDir() {
				continue
			}
			oldest, err := s.trimObject(e.Name(), window)
			if err != nil {
				return st, err
			}
			if oldest != 0 && (st.Oldest == 0 || oldest < st.Oldest) {
				st.Oldest = oldest
			}
		}
	}
	s.mu.Lock()
	st.Bytes = s.bytes
	s.oldest = st.Oldest
	s.mu.Unlock()
	return st, nil
}

// trimObject drops one object's unneeded generations and returns its
// oldest restorable point's time.
// An object not used since the previous trim is forgotten (it is read
// again from disk when needed), so memory follows the objects in use.
func (s *Store) trimObject(id string, window int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, cached := s.objs[id]
	if cached && !o.used {
		delete(s.objs, id)
	} else if cached {
		o.used = false
	} else {
		var err error
		if o, err = s.list(id); err != nil {
			return 0, err
		}
	}
	for len(o.gens) > 1 {
		next := o.gens[1]
		if !next.base {
			if err := s.scanned(o, next); err != nil {
				return 0, err
			}
		}
		if next.oldest() == 0 || next.oldest() > window {
			break
		}
		if err := s.removeGeneration(o, o.gens[0]); err != nil {
			return 0, fmt.Errorf("history trim: %w", err)
		}
		o.gens = o.gens[1:]
	}
	if len(o.gens) == 0 {
		return 0, nil
	}
	g := o.gens[0]
	if !g.base {
		if err := s.scanned(o, g); err != nil {
			return 0, err
		}
	}
	return g.oldest(), nil
}

// Stats reports the retained bytes and the oldest point as of the last
// Trim.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Bytes: s.bytes, Oldest: s.oldest}
}
