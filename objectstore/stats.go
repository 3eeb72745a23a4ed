package objectstore

import (
	"sort"
	"sync/atomic"
	"time"
)

// Statement statistics feed the advisor (advice.go). They are kept per
// shape (shape.go) while the store is open, for at most Config.StatementShapes
// shapes, the least recently run evicted first. Recording is a map lookup
// and a few additions; everything costly (query plans, row counts) waits
// until advice is asked for.

// DefaultStatementShapes is how many statement shapes a store keeps
// statistics for when none is configured.
const DefaultStatementShapes = 64

// maxSampleBytes bounds the statement text kept per shape to explain it
// later; a longer statement keeps only its (cut) shape and is not planned.
const maxSampleBytes = 16 << 10

// maxCachedText bounds the statements whose text is mapped to its shape
// without normalising it again; texts longer than that are normalised on
// every run.
const maxCachedText = 1024

// ShapeStats are the statistics of one statement shape.
type ShapeStats struct {
	Shape string // the normalised statement
	// Executions, Rows (returned) and Written (rows changed) add up every
	// successful run since the store was opened.
	Executions, Rows, Written int64
	// MaxRows is the most rows one run returned.
	MaxRows int64
	// MaxPerEvent is the most runs of the shape within one event.
	MaxPerEvent int64
	// Time is the time spent running it, reading its rows included.
	Time time.Duration

	sample  string // the first statement text seen, for its query plan
	lastUse uint64
	event   uint64 // the event inEvent counts for
	inEvent int64
	evicted bool
}

type stmtStats struct {
	max    int
	shapes map[string]*ShapeStats // by shape
	byText map[string]*ShapeStats // by statement text, a cache of normalize
	tick   uint64
	event  uint64

	budget    *StatsBudget // shared by a runtime's stores; nil: none
	shapeCost int64        // charged to budget for shapes
	textCost  int64        // and for byText's keys
}

func newStmtStats(max int, budget *StatsBudget) *stmtStats {
	// Not sized for max: most objects run a handful of shapes, and a map
	// sized for 64 is a few KiB per open object.
	return &stmtStats{max: max, shapes: map[string]*ShapeStats{}, byText: map[string]*ShapeStats{}, budget: budget}
}

// StatsBudget bounds the memory the statement statistics of many stores
// take together (a runtime's open objects, each up to StatementShapes
// shapes): a store that would go over it replaces its own least recently
// run shapes, down to a floor of storeFloor bytes each store may keep.
// Safe for concurrent use.
type StatsBudget struct {
	max  int64
	used atomic.Int64
}

// NewStatsBudget is a budget of maxBytes.
func NewStatsBudget(maxBytes int64) *StatsBudget { return &StatsBudget{max: maxBytes} }

// Used is the bytes charged now.
func (b *StatsBudget) Used() int64 { return b.used.Load() }

// take charges n bytes if they fit.
func (b *StatsBudget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

// storeFloor is what each store may keep whatever the budget, so a store
// opened after others filled it still has statistics: the budget can be
// exceeded by at most this much per open store.
const storeFloor = 4 << 10

// shapeOverhead estimates a shape's memory besides its texts: the struct,
// two map entries and their keys' headers.
const shapeOverhead = 256

func shapeCost(sh *ShapeStats) int64 {
	return shapeOverhead + int64(len(sh.Shape)+len(sh.sample))
}

// release gives back everything charged (the store closes or resets).
func (st *stmtStats) release() {
	if st.budget != nil {
		st.budget.used.Add(-(st.shapeCost + st.textCost))
	}
	st.shapeCost, st.textCost = 0, 0
}

// evictOldest drops the least recently run shape; false if none is left.
func (st *stmtStats) evictOldest() bool {
	var oldest *ShapeStats
	for _, s := range st.shapes {
		if oldest == nil || s.lastUse < oldest.lastUse {
			oldest = s
		}
	}
	if oldest == nil {
		return false
	}
	oldest.evicted = true
	delete(st.shapes, oldest.Shape)
	if st.budget != nil {
		c := shapeCost(oldest)
		st.budget.used.Add(-c)
		st.shapeCost -= c
	}
	return true
}

// beginEvent starts counting runs per event afresh.
func (st *stmtStats) beginEvent() { st.event++ }

// record notes one successful run of stmt.
func (st *stmtStats) record(stmt string, rows, written int64, d time.Duration) {
	sh := st.byText[stmt]
	if sh == nil || sh.evicted {
		if sh = st.lookup(stmt); sh == nil {
			return // over the runtime's budget, with no shape of its own to give up
		}
	}
	st.tick++
	sh.lastUse = st.tick
	sh.Executions++
	sh.Rows += rows
	sh.Written += written
	sh.Time += d
	if rows > sh.MaxRows {
		sh.MaxRows = rows
	}
	if sh.event != st.event {
		sh.event, sh.inEvent = st.event, 0
	}
	sh.inEvent++
	if sh.inEvent > sh.MaxPerEvent {
		sh.MaxPerEvent = sh.inEvent
	}
}

// lookup finds or makes the shape of stmt, evicting the least recently
// run shape when full or over the budget; nil when the budget leaves no
// room even then.
func (st *stmtStats) lookup(stmt string) *ShapeStats {
	shape := normalize(stmt)
	sh := st.shapes[shape]
	if sh == nil {
		if len(st.shapes) >= st.max {
			st.evictOldest()
		}
		sh = &ShapeStats{Shape: shape}
		if len(stmt) <= maxSampleBytes {
			sh.sample = stmt
		}
		if st.budget != nil {
			c := shapeCost(sh)
			for !st.budget.take(c) {
				if st.shapeCost+c <= storeFloor {
					st.budget.used.Add(c) // every store keeps a few
					break
				}
				if !st.evictOldest() {
					return nil
				}
			}
			st.shapeCost += c
		}
		st.shapes[shape] = sh
	}
	if len(stmt) <= maxCachedText {
		if len(st.byText) >= 4*st.max {
			// Statements with literals in them make a new text every
			// run: start the cache afresh rather than let it grow.
			clear(st.byText)
			if st.budget != nil {
				st.budget.used.Add(-st.textCost)
				st.textCost = 0
			}
		}
		if _, ok := st.byText[stmt]; !ok && st.budget != nil {
			if c := int64(len(stmt)); st.budget.take(c) {
				st.textCost += c
			} else {
				return sh // counted, but its text is not cached
			}
		}
		st.byText[stmt] = sh
	}
	return sh
}

// StatementStats returns a copy of the statistics of every shape kept, the
// most executed first. It is nil when statistics are off.
func (s *Store) StatementStats() []ShapeStats {
	if s.stats == nil {
		return nil
	}
	out := make([]ShapeStats, 0, len(s.stats.shapes))
	for _, sh := range s.stats.shapes {
		out = append(out, *sh)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Executions != out[j].Executions {
			return out[i].Executions > out[j].Executions
		}
		return out[i].Shape < out[j].Shape
	})
	return out
}

// ResetStatementStats forgets the statistics gathered so far.
func (s *Store) ResetStatementStats() {
	if s.stats != nil {
		s.stats.release()
		s.stats = newStmtStats(s.stats.max, s.stats.budget)
	}
}
