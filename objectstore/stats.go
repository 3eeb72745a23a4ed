package objectstore

import (
	"sort"
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
}

func newStmtStats(max int) *stmtStats {
	return &stmtStats{max: max, shapes: make(map[string]*ShapeStats, max), byText: make(map[string]*ShapeStats, max)}
}

// beginEvent starts counting runs per event afresh.
func (st *stmtStats) beginEvent() { st.event++ }

// record notes one successful run of stmt.
func (st *stmtStats) record(stmt string, rows, written int64, d time.Duration) {
	sh := st.byText[stmt]
	if sh == nil || sh.evicted {
		sh = st.lookup(stmt)
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
// run shape when full.
func (st *stmtStats) lookup(stmt string) *ShapeStats {
	shape := normalize(stmt)
	sh := st.shapes[shape]
	if sh == nil {
		if len(st.shapes) >= st.max {
			var oldest *ShapeStats
			for _, s := range st.shapes {
				if oldest == nil || s.lastUse < oldest.lastUse {
					oldest = s
				}
			}
			oldest.evicted = true
			delete(st.shapes, oldest.Shape)
		}
		sh = &ShapeStats{Shape: shape}
		if len(stmt) <= maxSampleBytes {
			sh.sample = stmt
		}
		st.shapes[shape] = sh
	}
	if len(stmt) <= maxCachedText {
		if len(st.byText) >= 4*st.max {
			// Statements with literals in them make a new text every
			// run: start the cache afresh rather than let it grow.
			clear(st.byText)
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
		s.stats = newStmtStats(s.stats.max)
	}
}
