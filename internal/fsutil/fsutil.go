// Package fsutil holds the file-system steps durability needs in several
// packages.
package fsutil

import "os"

// SyncDir fsyncs a directory, so the names created, renamed or removed in
// it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
