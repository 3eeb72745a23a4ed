package objectstore

import (
	"bytes"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Export writes a consistent copy of the database at path to w while the
// object stays live: a separate read-only connection takes a WAL snapshot
// and VACUUM INTO writes it to a temporary file, which is then streamed.
// Safe to call concurrently with events on the object.
func Export(path string, w io.Writer) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".export-*.db")
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	os.Remove(tmpName) // VACUUM INTO wants to create it
	defer os.Remove(tmpName)

	c, err := openConn(path, "mode=ro")
	if err != nil {
		return 0, fmt.Errorf("export: %w", classify(err))
	}
	_, err = c.Exec("VACUUM INTO '"+strings.ReplaceAll(tmpName, "'", "''")+"'", nil)
	c.Close()
	if err != nil {
		return 0, fmt.Errorf("export: %w", classify(err))
	}
	f, err := os.Open(tmpName)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	return io.Copy(w, f)
}

var sqliteHeader = []byte("SQLite format 3\x00")

// allowedReserved are the internal tables an imported file may carry.
var allowedReserved = map[string]bool{"_dura_kv": true, "_dura_schema_version": true, "_dura_object": true, "_dura_tx": true, "_dura_alarm": true}

// ValidateImport checks that the file at path is a sound SQLite database an
// object may adopt: right header, integrity_check ok, no bigger than
// maxBytes, no reserved names but Dura's own tables, and no trigger or view
// that names them.
func ValidateImport(path string, maxBytes int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	head := make([]byte, len(sqliteHeader))
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, sqliteHeader) {
		return fmt.Errorf("%w: not a SQLite database", ErrCorrupt)
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if st.Size() > maxBytes {
		return fmt.Errorf("%w: database of %d bytes, the object limit is %d", ErrStorageFull, st.Size(), maxBytes)
	}
	c, err := openConn(path, "")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer c.Close()
	rows, err := c.Query("PRAGMA integrity_check", nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	vals, err := drain(rows)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(vals) != 1 || vals[0][0] != "ok" {
		return fmt.Errorf("%w: integrity_check failed: %v", ErrCorrupt, vals)
	}
	rows, err = c.Query("SELECT type, name, tbl_name, sql FROM sqlite_master", nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	vals, err = drain(rows)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	for _, r := range vals {
		typ, name, tbl, sql := fmt.Sprint(r[0]), fmt.Sprint(r[1]), fmt.Sprint(r[2]), fmt.Sprint(r[3])
		if typ == "table" && allowedReserved[name] {
			continue
		}
		if typ == "index" && allowedReserved[tbl] && strings.HasPrefix(name, "sqlite_autoindex_") {
			continue
		}
		if isReserved(name) || isReserved(tbl) {
			return fmt.Errorf("%w: %s %q uses a reserved name", ErrNotAuthorized, typ, name)
		}
		if (typ == "trigger" || typ == "view") && namesReservedInBody(sql) {
			return fmt.Errorf("%w: %s %q names a reserved table", ErrNotAuthorized, typ, name)
		}
	}
	return nil
}

func drain(rows interface {
	Columns() []string
	Next([]driver.Value) error
	Close() error
}) ([][]any, error) {
	defer rows.Close()
	var out [][]any
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		row := make([]any, len(dest))
		for i, v := range dest {
			row[i] = fromDriver(v)
		}
		out = append(out, row)
	}
}

// ReplaceFile moves the validated file src into place as the database at
// dst. The store at dst must be closed. Any -wal and -shm of the old file
// are removed first, so they can never be applied to the new one.
func ReplaceFile(dst, src string) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(dst + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("import: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := syncFile(src); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return syncFile(filepath.Dir(dst))
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
