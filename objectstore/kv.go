package objectstore

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

const kvSchema = `CREATE TABLE IF NOT EXISTS _dura_kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID`

// Entry is one KV pair.
type Entry struct {
	Key   string
	Value []byte
}

// ListOptions selects a range of keys, in key order (bytewise).
type ListOptions struct {
	Start      string // first key, inclusive
	StartAfter string // keys strictly after this one
	End        string // keys strictly before this one
	Prefix     string // keys that begin with this
	Reverse    bool   // descending order
	Limit      int    // at most this many; 0 means no limit
}

// ValidateKey reports a KV key Dura will not store: empty, over
// MaxKeyBytes, not UTF-8, or holding NUL.
func ValidateKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: empty key", ErrBadRequest)
	case len(k) > MaxKeyBytes:
		return fmt.Errorf("%w: key of %d bytes, the limit is %d", ErrTooLarge, len(k), MaxKeyBytes)
	case !utf8.ValidString(k):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrBadRequest)
	case strings.IndexByte(k, 0) >= 0:
		return fmt.Errorf("%w: key holds a NUL byte", ErrBadRequest)
	}
	return nil
}

func (s *Store) kvExists() (bool, error) {
	if s.kvReady {
		return true, nil
	}
	rows, err := s.queryInternal("SELECT 1 FROM sqlite_master WHERE type='table' AND name='_dura_kv'")
	if err != nil {
		return false, err
	}
	s.kvReady = len(rows) > 0
	return s.kvReady, nil
}

func (s *Store) kvEnsure() error {
	if ok, err := s.kvExists(); ok || err != nil {
		return err
	}
	if err := s.execInternal(kvSchema); err != nil {
		return err
	}
	s.kvReady = true
	return nil
}

// Get returns the value stored under key and whether there was one.
func (s *Store) Get(key string) ([]byte, bool, error) {
	if err := ValidateKey(key); err != nil {
		return nil, false, err
	}
	if ok, err := s.kvExists(); !ok || err != nil {
		return nil, false, err
	}
	rows, err := s.queryInternal("SELECT value FROM _dura_kv WHERE key = ?", key)
	if err != nil || len(rows) == 0 {
		return nil, false, err
	}
	return rows[0][0].([]byte), true, nil
}

// GetMany returns the values of those keys that exist.
func (s *Store) GetMany(keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, ok, err := s.Get(k)
		if err != nil {
			return nil, err
		}
		if ok {
			out[k] = v
		}
	}
	return out, nil
}

// Put stores value under key, replacing any earlier value.
func (s *Store) Put(key string, value []byte) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(value) > MaxValueBytes {
		return fmt.Errorf("%w: value of %d bytes, the limit is %d", ErrTooLarge, len(value), MaxValueBytes)
	}
	if err := s.kvEnsure(); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return s.execInternal("INSERT INTO _dura_kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value)
}

// PutMany stores every entry, all or nothing.
func (s *Store) PutMany(entries []Entry) error {
	return s.Transaction(func() error {
		for _, e := range entries {
			if err := s.Put(e.Key, e.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delete removes key and reports whether it existed.
func (s *Store) Delete(key string) (bool, error) {
	if err := ValidateKey(key); err != nil {
		return false, err
	}
	if ok, err := s.kvExists(); !ok || err != nil {
		return false, err
	}
	if err := s.execInternal("DELETE FROM _dura_kv WHERE key = ?", key); err != nil {
		return false, err
	}
	if err := s.refreshChanges(); err != nil {
		return false, err
	}
	return s.lastChanges > 0, nil
}

// DeleteMany removes the keys and returns how many existed.
func (s *Store) DeleteMany(keys []string) (int, error) {
	n := 0
	err := s.Transaction(func() error {
		for _, k := range keys {
			ok, err := s.Delete(k)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	return n, err
}

// List returns the entries in a key range.
func (s *Store) List(o ListOptions) ([]Entry, error) {
	if o.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrBadRequest)
	}
	if o.Start != "" && o.StartAfter != "" {
		return nil, fmt.Errorf("%w: start and startAfter are exclusive", ErrBadRequest)
	}
	if ok, err := s.kvExists(); !ok || err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if o.Start != "" {
		where, args = append(where, "key >= ?"), append(args, o.Start)
	}
	if o.StartAfter != "" {
		where, args = append(where, "key > ?"), append(args, o.StartAfter)
	}
	if o.End != "" {
		where, args = append(where, "key < ?"), append(args, o.End)
	}
	if o.Prefix != "" {
		where, args = append(where, "key >= ?"), append(args, o.Prefix)
		if hi, ok := prefixEnd(o.Prefix); ok {
			where, args = append(where, "key < ?"), append(args, hi)
		}
	}
	q := "SELECT key, value FROM _dura_kv"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if o.Reverse {
		q += " ORDER BY key DESC"
	} else {
		q += " ORDER BY key"
	}
	if o.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(o.Limit)
	}
	rows, err := s.queryInternal(q, args...)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = Entry{Key: r[0].(string), Value: r[1].([]byte)}
	}
	return out, nil
}

// prefixEnd is the smallest string greater than every string that starts
// with p (bytewise), if there is one.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
