package objectstore

import (
	"fmt"
)

// The object's own class and name are kept inside its file, so a node can
// rebuild its object catalog from the files alone.
const identitySchema = `CREATE TABLE IF NOT EXISTS _dura_object (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID`

// SetIdentity records the object's class and name in its file, in the
// current transaction.
func (s *Store) SetIdentity(class, name string) error {
	return s.execInternal(identitySchema+`;
		INSERT OR REPLACE INTO _dura_object (k, v) VALUES ('class', ?), ('name', ?)`, class, name)
}

// ReadIdentity reads the class and name recorded in the database at path,
// without opening it for writing.
func ReadIdentity(path string) (class, name string, err error) {
	c, err := openConn(path, "mode=ro")
	if err != nil {
		return "", "", fmt.Errorf("read identity: %w", classify(err))
	}
	defer c.Close()
	rows, err := c.Query("SELECT k, v FROM _dura_object", nil)
	if err != nil {
		if isNoSuchTable(err) {
			return "", "", fmt.Errorf("%w: %s", ErrNoIdentity, path)
		}
		return "", "", fmt.Errorf("read identity of %s: %w", path, classify(err))
	}
	vals, err := drain(rows)
	if err != nil {
		return "", "", fmt.Errorf("read identity of %s: %w", path, classify(err))
	}
	for _, r := range vals {
		switch r[0] {
		case "class":
			class, _ = r[1].(string)
		case "name":
			name, _ = r[1].(string)
		}
	}
	if class == "" || name == "" {
		return "", "", fmt.Errorf("%w: %s", ErrNoIdentity, path)
	}
	return class, name, nil
}

// HasIdentity reports whether the file already records its identity.
func (s *Store) HasIdentity() (bool, error) {
	rows, err := s.queryInternal("SELECT 1 FROM sqlite_master WHERE type='table' AND name='_dura_object'")
	return len(rows) > 0, err
}

// ReadTxNumber reads the transaction number a closed object file
// reflects (its last logged commit): 0 for a file that never logged one.
func ReadTxNumber(path string) (uint64, error) {
	c, err := openConn(path, "mode=ro")
	if err != nil {
		return 0, fmt.Errorf("read transaction number: %w", classify(err))
	}
	defer c.Close()
	rows, err := c.Query("SELECT n FROM _dura_tx WHERE id = 1 AND EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_dura_tx')", nil)
	if err != nil {
		if isNoSuchTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("read transaction number of %s: %w", path, classify(err))
	}
	vals, err := drain(rows)
	if err != nil || len(vals) == 0 {
		return 0, err
	}
	n, _ := vals[0][0].(int64)
	return uint64(n), nil
}
