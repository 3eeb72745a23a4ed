package main

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

// TestE2ECrashLosesNothingTheLogHolds: under write load over 64 objects,
// kill -9 the node, then take away everything SQLite did not fsync: every
// -wal and -shm file under the data directory goes (with the node log the
// objects' commits are not synced to their own files). After a restart
// every acknowledged write is there: the log brought each object
// forward. The same with a torn tail (random bytes after the log's last
// record, as a half-written batch leaves).
func TestE2ECrashLosesNothingTheLogHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn tail %v", torn), func(t *testing.T) {
			dir := t.TempDir()
			n := e2eStart(t, dir)
			stop := make(chan struct{})
			result := make(chan map[string]int64)
			go func() { result <- hammer(n.client(), 64, stop) }()
			testutil.Poll(t, 30*time.Second, "writes flow", func() string {
				if v := readCounter(t, n.client(), "k0"); v < 20 {
					return fmt.Sprintf("k0 = %d, want 20", v)
				}
				return ""
			})
			n.Cmd.Process.Kill()
			<-n.Done
			close(stop)
			acked := <-result
			removed := 0
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && (strings.HasSuffix(path, "-wal") || strings.HasSuffix(path, "-shm")) {
					if os.Remove(path) == nil {
						removed++
					}
				}
				return nil
			})
			if removed == 0 {
				t.Fatal("no -wal or -shm file to remove: the test would prove nothing")
			}
			if torn {
				tearLogTail(t, filepath.Join(dir, "log"))
			}
			n2 := e2eStart(t, dir)
			lost := 0
			for name, v := range acked {
				if got := readCounter(t, n2.client(), name); got < v {
					lost++
					t.Errorf("counter %s = %d after the crash, but %d was acknowledged", name, got, v)
				}
			}
			t.Logf("%d objects, %d -wal/-shm files removed, %d lost", len(acked), removed, lost)
		})
	}
}

// tearLogTail writes random bytes just past the last record of the
// newest segment, as a batch cut short by the crash would leave.
func tearLogTail(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("log directory: %v", err)
	}
	last := filepath.Join(dir, entries[len(entries)-1].Name())
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	garbage := make([]byte, 100+rand.IntN(5000))
	for i := range garbage {
		garbage[i] = byte(rand.IntN(256))
	}
	f, err := os.OpenFile(last, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(garbage, int64(end)); err != nil {
		t.Fatal(err)
	}
}
