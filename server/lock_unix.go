//go:build unix

package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the file in the data directory a running node holds an
// exclusive flock on; it holds that node's pid.
const lockFile = "dura.lock"

// inUseError says who holds the directory; it is ErrDataInUse.
type inUseError struct{ dir, holder string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by %s", e.dir, e.holder)
}

func (e *inUseError) Is(target error) bool { return target == ErrDataInUse }

// lockData takes the data directory for this process, so a second node
// started on it stops at once with the other's pid instead of timing out
// on files the first one holds. The kernel drops the lock when the
// process dies, so a crash leaves nothing to clean up. The returned
// function releases it.
func lockData(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another dura process"
			if b, _ := os.ReadFile(path); len(b) > 0 {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = fmt.Sprintf("another dura process (pid %d)", pid)
				}
			}
			return nil, &inUseError{dir, holder}
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
