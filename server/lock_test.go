//go:build unix

package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockDataRefusesASecondHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by the lock
	unlock, err := lockData(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file, so a second open in this
	// process conflicts just as another process would.
	_, err = lockData(dir)
	want := fmt.Sprintf("data directory %s is in use by another dura process (pid %d)", dir, os.Getpid())
	if !errors.Is(err, ErrDataInUse) || err.Error() != want {
		t.Fatalf("second lock: %v, want %q", err, want)
	}
	unlock()
	unlock, err = lockData(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock()
	if b, _ := os.ReadFile(filepath.Join(dir, lockFile)); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("lock file holds %q", b)
	}
}
