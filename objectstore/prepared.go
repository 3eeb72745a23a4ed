package objectstore

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// The store keeps its connection's prepared statements itself (the
// driver's own cache is off), so that an idle object can give them back:
// each costs SQLite a few KiB, and a node holds thousands of objects open.

// cachedStmt is a prepared statement and its text.
type cachedStmt struct {
	text string
	st   *sqlite3.SQLiteStmt
}

// query runs one statement, prepared once and kept while it is among the
// Config.StatementCache most recently run. Arguments past the statement's
// parameters are ignored; too few are an error.
func (s *Store) query(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if n := st.NumInput(); len(args) < n {
		return nil, fmt.Errorf("not enough args to execute query: want %d got %d", n, len(args))
	} else if len(args) > n {
		args = args[:n]
	}
	rows, err := st.QueryContext(ctx, args)
	if err != nil {
		// Not kept: a statement that failed is prepared afresh next time
		// rather than reused in whatever state the failure left it.
		s.forget(q)
		return nil, err
	}
	return rows, nil
}

// prepared finds q's statement, most recently used last, or prepares it
// and makes room by finalizing the least recently used.
func (s *Store) prepared(ctx context.Context, q string) (*sqlite3.SQLiteStmt, error) {
	for i := len(s.stmts) - 1; i >= 0; i-- {
		if c := s.stmts[i]; c.text == q {
			copy(s.stmts[i:], s.stmts[i+1:])
			s.stmts[len(s.stmts)-1] = c
			return c.st, nil
		}
	}
	if s.conn == nil {
		return nil, errParked
	}
	st, err := s.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(s.stmts) >= s.cfg.StatementCache {
		s.stmts[0].st.Close()
		s.stmts = append(s.stmts[:0], s.stmts[1:]...)
	}
	c := cachedStmt{text: q, st: st.(*sqlite3.SQLiteStmt)}
	s.stmts = append(s.stmts, c)
	return c.st, nil
}

// forget finalizes q's statement if it is kept.
func (s *Store) forget(q string) {
	for i, c := range s.stmts {
		if c.text == q {
			c.st.Close()
			s.stmts = append(s.stmts[:i], s.stmts[i+1:]...)
			return
		}
	}
}

// finalizeAll finalizes every kept statement and lets their list go.
func (s *Store) finalizeAll() {
	for _, c := range s.stmts {
		c.st.Close()
	}
	s.stmts = nil
}

// Release gives back the memory an idle store can do without: its
// prepared statements and the pages in its cache (read again from the
// file, or the operating system's cache, when next needed). Between
// events only; the store stays open and works as before.
func (s *Store) Release() error {
	if s.closed {
		return ErrClosed
	}
	if s.inEvent {
		return fmt.Errorf("%w: release during an event", ErrBadRequest)
	}
	if s.conn == nil {
		return nil // parked: nothing held
	}
	s.finalizeAll()
	s.internal = true
	defer func() { s.internal = false }()
	st, err := s.conn.Prepare("PRAGMA shrink_memory")
	if err != nil {
		return classify(err)
	}
	defer st.Close()
	rows, err := st.(*sqlite3.SQLiteStmt).QueryContext(context.Background(), nil)
	if err != nil {
		return classify(err)
	}
	return rows.Close()
}
