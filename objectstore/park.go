package objectstore

import "fmt"

// A node keeps more objects live (their in-memory state, their event
// queue) than it keeps databases open: an open database costs three file
// descriptors and ~130 KiB (SQLite's connection, schema, page cache and
// the -shm mapping of the WAL index), a live object's own state a few
// KiB. Park closes an idle store's connection and keeps the store, so the
// object stays live; Unpark opens the connection again before the next
// event, as Open would (the file's schema, transaction number and KV
// table are read again; statement statistics are kept).

// errParked is any statement run on a parked store: the node unparks a
// store before its events, so this is a bug, not a user error.
var errParked = fmt.Errorf("%w: object store is parked", ErrClosed)

// Park closes the connection of an idle store. SQLite checkpoints the
// WAL into the file as the connection closes; with Config.Capture the
// caller checkpoints first (Checkpoint) and takes the records. Between
// events only. Parking a parked store does nothing.
func (s *Store) Park() error {
	if s.closed {
		return ErrClosed
	}
	if s.conn == nil {
		return nil
	}
	if s.inEvent {
		return fmt.Errorf("%w: park during an event", ErrBadRequest)
	}
	if len(s.records) > 0 {
		return fmt.Errorf("%w: park with %d records not taken", ErrBadRequest, len(s.records))
	}
	s.finalizeAll()
	err := s.conn.Close()
	s.conn = nil
	s.wal = nil
	if err != nil {
		return classify(err)
	}
	return nil
}

// Unpark opens a parked store's connection again; on an open store it
// does nothing. If it fails the store stays parked.
func (s *Store) Unpark() error {
	if s.closed {
		return ErrClosed
	}
	if s.conn != nil {
		return nil
	}
	return s.connect()
}

// Parked reports whether the store's connection is closed by Park.
func (s *Store) Parked() bool { return !s.closed && s.conn == nil }

// usable is nil for a store that can run statements now.
func (s *Store) usable() error {
	if s.closed {
		return ErrClosed
	}
	if s.conn == nil {
		return errParked
	}
	return nil
}
