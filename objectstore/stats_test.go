package objectstore

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
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
	st := newStmtStats(DefaultStatementShapes, nil)
	q := `INSERT INTO counters (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at RETURNING value`
	for i := 0; i < b.N; i++ {
		if i%100 == 0 {
			st.beginEvent()
		}
		st.record(q, 1, 1, 1000)
	}
}

func TestStatsBudgetBoundsEveryStore(t *testing.T) {
	budget := NewStatsBudget(8 << 10)
	dir := t.TempDir()
	var stores []*Store
	for i := range 4 {
		s, err := Open(Config{Path: filepath.Join(dir, fmt.Sprint(i, ".db")), StatsBudget: budget})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
		mustExec(t, s, "CREATE TABLE t (a, b)")
		// Forty shapes each: far more than the budget holds for four.
		for j := range 40 {
			mustExec(t, s, fmt.Sprintf("SELECT a FROM t WHERE b = ? AND a > %d", j)+strings.Repeat(" ", j), j)
			mustExec(t, s, fmt.Sprintf("SELECT count(*) AS c%d FROM t", j))
		}
		if used, bound := budget.Used(), int64(8<<10+(i+1)*storeFloor); used > bound {
			t.Fatalf("after store %d: %d bytes charged, bound %d", i, used, bound)
		}
	}
	// The last store still keeps statistics: it gave up its own oldest.
	last := stores[len(stores)-1].StatementStats()
	if len(last) == 0 || len(last) > 20 || !strings.Contains(last[len(last)-1].Shape+last[0].Shape, "count") {
		t.Fatalf("the last store kept %d shapes", len(last))
	}
	for _, s := range stores {
		s.Close()
	}
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes still charged after every store closed", used)
	}
}

// TestAdvisorOverheadFigure measures what the statement statistics cost
// on the counter's upsert through Store.Exec, as the node runs it
// (captured commits, 100 statements per event): two stores, statistics
// on and off, run in alternating slices so the machine's noise falls on
// both, and the ratio of their times is reported per round. Only with
// DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run AdvisorOverheadFigure -v ./objectstore
func TestAdvisorOverheadFigure(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const rounds, perSlice = 200, 1000
	// On tmpfs where there is one: the checkpoints' fsyncs are noise here.
	base := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "dura-advisor-"); err == nil {
			base = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	n := 0
	open := func(shapes int) *Store {
		n++
		s := openTest(t, Config{Path: filepath.Join(base, fmt.Sprint(n, ".db")), Capture: true, StatementShapes: shapes})
		event(t, s, func() {
			mustExec(t, s, `CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL, updated_at INTEGER NOT NULL)`)
		})
		return s
	}
	stores := map[string]*Store{"off": open(-1), "on": open(0)}
	run := func(s *Store) time.Duration {
		start := time.Now()
		for i := 0; i < perSlice; i += 100 {
			event(t, s, func() {
				for j := i; j < i+100; j++ {
					mustExec(t, s, `INSERT INTO counters (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at RETURNING value`, "k"+strconv.Itoa(j%16), 1, int64(j))
				}
			})
			s.TakeRecords()
			if s.WALBytes() > 1<<20 {
				s.Checkpoint()
			}
		}
		return time.Since(start)
	}
	var ratios []float64
	var on, off time.Duration
	for r := range rounds {
		order := []string{"off", "on"}
		if r%2 == 1 {
			order = []string{"on", "off"}
		}
		got := map[string]time.Duration{}
		for _, k := range order {
			got[k] = run(stores[k])
		}
		on, off = on+got["on"], off+got["off"]
		ratios = append(ratios, float64(got["on"])/float64(got["off"]))
	}
	// The geometric mean of the per-round ratios, with a 95 % interval
	// from the rounds' spread.
	var sum, sq float64
	for _, r := range ratios {
		sum += math.Log(r)
	}
	mean := sum / rounds
	for _, r := range ratios {
		sq += (math.Log(r) - mean) * (math.Log(r) - mean)
	}
	se := math.Sqrt(sq/(rounds-1)) / math.Sqrt(rounds)
	sort.Float64s(ratios)
	t.Logf("statistics on / off, per statement: %.2f us / %.2f us; ratio median %.3f, middle half %.3f..%.3f, geometric mean %.3f (95 %% interval %.3f..%.3f)",
		float64(on.Microseconds())/rounds/perSlice, float64(off.Microseconds())/rounds/perSlice,
		ratios[rounds/2], ratios[rounds/4], ratios[3*rounds/4], math.Exp(mean), math.Exp(mean-1.96*se), math.Exp(mean+1.96*se))
}
