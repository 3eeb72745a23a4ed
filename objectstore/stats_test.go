package objectstore

import (
	"strconv"
	"testing"
)

// BenchmarkCounterUpsert runs the counter example's upsert through Exec,
// 100 to an event, with statement statistics off and on: the difference
// is the advisor's cost on the hot path.
func BenchmarkCounterUpsert(b *testing.B) {
	for _, c := range []struct {
		name   string
		shapes int
	}{{"stats=off", -1}, {"stats=on", 0}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(Config{Path: b.TempDir() + "/bench.db", StatementShapes: c.shapes})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.Begin(); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Exec(`CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL, updated_at INTEGER NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%100 == 99 {
					if err := s.Commit(); err != nil {
						b.Fatal(err)
					}
					if err := s.Begin(); err != nil {
						b.Fatal(err)
					}
				}
				_, err := s.Exec(`
		INSERT INTO counters (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE
			SET value = value + excluded.value, updated_at = excluded.updated_at
		RETURNING value`, "k"+strconv.Itoa(i%16), 1, int64(i))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s.Commit()
		})
	}
}

// BenchmarkStatsRecord is the bookkeeping alone, per statement run.
func BenchmarkStatsRecord(b *testing.B) {
	st := newStmtStats(DefaultStatementShapes)
	q := `INSERT INTO counters (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at RETURNING value`
	for i := 0; i < b.N; i++ {
		if i%100 == 0 {
			st.beginEvent()
		}
		st.record(q, 1, 1, 1000)
	}
}
