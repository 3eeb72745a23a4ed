package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OpenFilesUnder counts this process's descriptors open on files under
// dir whose name ends in suffix ("" for any). It skips the test where
// /proc/self/fd is missing (not Linux).
func OpenFilesUnder(t testing.TB, dir, suffix string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) && strings.HasSuffix(target, suffix) {
			n++
		}
	}
	return n
}
