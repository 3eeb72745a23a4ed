package nodelog

import (
	"errors"
	"os"
	"syscall"
)

// fdatasync syncs f's data (and only the metadata needed to read it back:
// a preallocated segment's size never changes).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// preallocate reserves size bytes for f, so appends never grow it (nor
// find the disk full). Only a file system without fallocate gets a
// sparse file instead; a full disk is an error.
func preallocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}
