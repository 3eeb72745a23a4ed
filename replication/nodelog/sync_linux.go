package nodelog

import (
	"os"
	"syscall"
)

// fdatasync syncs f's data (and only the metadata needed to read it back:
// a preallocated segment's size never changes).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// preallocate reserves size bytes for f, so appends never grow it.
func preallocate(f *os.File, size int64) error {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return f.Truncate(size) // a file system without fallocate
	}
	return nil
}
