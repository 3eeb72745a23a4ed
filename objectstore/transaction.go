package objectstore

import (
	"fmt"
	"strconv"
)

type savepoint struct {
	name     string
	explicit bool // opened by a user BEGIN, closed by COMMIT/ROLLBACK
}

// Begin starts the implicit transaction of an event.
func (s *Store) Begin() error {
	if err := s.usable(); err != nil {
		return err
	}
	if s.inEvent {
		return fmt.Errorf("%w: event already open", ErrBadRequest)
	}
	s.aborted = nil
	if err := s.execInternal("BEGIN"); err != nil {
		return err
	}
	s.inEvent = true
	s.inserted = false
	s.dirty = false
	if s.stats != nil {
		s.stats.beginEvent()
	}
	s.savepoint = s.savepoint[:0]
	return nil
}

// Dirty reports whether the open event's transaction may have written
// (a statement that is not read-only ran).
func (s *Store) Dirty() bool { return s.inEvent && s.dirty }

// Commit commits the event's transaction. If the commit fails, the
// transaction is rolled back and the error returned.
func (s *Store) Commit() error {
	if !s.inEvent {
		return fmt.Errorf("%w: no event open", ErrBadRequest)
	}
	s.inEvent = false
	s.savepoint = s.savepoint[:0]
	if s.aborted != nil {
		err := s.abortedErr()
		s.aborted = nil
		return err
	}
	if s.conn.AutoCommit() {
		// SQLite already rolled the transaction back; reporting success
		// would lose writes silently.
		return fmt.Errorf("%w: the transaction was rolled back by an earlier error", ErrSQL)
	}
	numbered := false
	if s.wal != nil && s.dirty {
		if err := s.bumpTx(); err != nil {
			_ = s.execInternal("ROLLBACK")
			return err
		}
		numbered = true
	}
	if err := s.execInternal("COMMIT"); err != nil {
		if !s.conn.AutoCommit() {
			_ = s.execInternal("ROLLBACK")
		}
		return err
	}
	if s.wal != nil {
		return s.captured(numbered)
	}
	return nil
}

// Rollback undoes the event's transaction.
func (s *Store) Rollback() error {
	if !s.inEvent {
		return nil
	}
	s.inEvent = false
	s.savepoint = s.savepoint[:0]
	s.aborted = nil
	s.kvReady = false // the KV table may have been created by the undone writes
	s.txReady = false // and so may _dura_tx
	if s.conn.AutoCommit() {
		return nil
	}
	err := s.execInternal("ROLLBACK")
	_ = s.refreshChanges()
	return err
}

// Transaction runs fn inside a savepoint: its writes are kept if fn returns
// nil and undone if it returns an error or panics (the panic goes on).
func (s *Store) Transaction(fn func() error) (err error) {
	name, err := s.pushSavepoint(false)
	if err != nil {
		return err
	}
	level := len(s.savepoint)
	done := false
	defer func() {
		if done {
			return
		}
		// fn panicked: undo its writes, then let the panic continue.
		s.popTo(level, name, true)
	}()
	ferr := fn()
	done = true
	if perr := s.popTo(level, name, ferr != nil); perr != nil && ferr == nil {
		return perr
	}
	return ferr
}

func (s *Store) pushSavepoint(explicit bool) (string, error) {
	if s.closed {
		return "", ErrClosed
	}
	s.spSeq++
	name := ReservedPrefix + "sp" + strconv.Itoa(s.spSeq)
	if err := s.execInternal("SAVEPOINT " + name); err != nil {
		return "", err
	}
	s.savepoint = append(s.savepoint, savepoint{name: name, explicit: explicit})
	return name, nil
}

// popTo closes the savepoint at stack level (1-based), and everything
// nested in it, keeping or undoing its writes.
func (s *Store) popTo(level int, name string, undo bool) error {
	if len(s.savepoint) < level || s.savepoint[level-1].name != name {
		return fmt.Errorf("%w: savepoint %s was already released", ErrSQL, name)
	}
	s.savepoint = s.savepoint[:level-1]
	if s.conn.AutoCommit() {
		return fmt.Errorf("%w: the transaction was rolled back by an earlier error", ErrSQL)
	}
	var err error
	if undo {
		s.kvReady = false
		err = s.execInternal("ROLLBACK TO " + name + "; RELEASE " + name)
	} else {
		err = s.execInternal("RELEASE " + name)
	}
	_ = s.refreshChanges()
	return err
}

// Depth is the number of open nested savepoints (explicit BEGINs and
// Transaction calls) inside the event.
func (s *Store) Depth() int { return len(s.savepoint) }

// noteAbort records err as the reason the event is over when SQLite
// rolled the whole transaction back, and returns err.
func (s *Store) noteAbort(err error) error {
	if err != nil && s.inEvent && s.aborted == nil && s.conn.AutoCommit() {
		s.aborted = err
	}
	return err
}

func (s *Store) abortedErr() error {
	return fmt.Errorf("the event's transaction was rolled back after an earlier error: %w", s.aborted)
}
