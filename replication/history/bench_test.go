package history

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dura-dev/dura/objectstore"
)

// TestRestoreFigure times rebuilding a 100 MB object as of its last
// commit and as of a commit in the middle, with 1 000 000 records of one
// (mostly empty) page each since its snapshot: the records are kept
// unfolded here (the default folds once they outgrow the snapshot).
// Only with DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run RestoreFigure -v -timeout 30m ./replication/history
func TestRestoreFigure(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const (
		ps      = 4096
		dbBytes = 100 << 20
		records = 1_000_000
	)
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "h"), time.Hour, 1<<40)
	rng := rand.New(rand.NewPCG(3, 4))
	base := make([]byte, dbBytes)
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	baseFile := filepath.Join(dir, "base.db")
	if err := os.WriteFile(baseFile, base, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Rebase("big", 1, 1, baseFile); err != nil {
		t.Fatal(err)
	}
	pages := uint32(dbBytes / ps)
	start := time.Now()
	for tx := uint64(2); tx < records+2; tx++ {
		img := make([]byte, ps)
		for i := range 40 {
			img[i] = byte(rng.Uint32())
		}
		rec := objectstore.Record{Tx: tx, PageSize: ps, DBPages: pages, Pages: map[uint32][]byte{1 + rng.Uint32N(pages): img}}
		if _, err := s.Append("big", int64(tx), rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	archive := time.Since(start)
	st := s.Stats()
	t.Logf("archived %d records in %s (%.0f/s); history %.1f MB (snapshot %d MB + %.1f bytes per record)",
		records, archive.Round(time.Millisecond), records/archive.Seconds(), float64(st.Bytes)/1e6, dbBytes>>20,
		float64(st.Bytes-dbBytes)/records)
	for _, tc := range []struct {
		name string
		tx   uint64
	}{{"the last commit", records + 1}, {"the middle commit", records / 2}} {
		start := time.Now()
		if err := s.Materialize("big", tc.tx, filepath.Join(dir, "out.db")); err != nil {
			t.Fatal(err)
		}
		t.Logf("rebuilt as of %s in %s", tc.name, time.Since(start).Round(time.Millisecond))
	}
}
