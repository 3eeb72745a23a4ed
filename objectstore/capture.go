package objectstore

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
)

// txSchema numbers an object's transactions in the database itself, so a
// file says which record it reflects.
const txSchema = `CREATE TABLE IF NOT EXISTS _dura_tx (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)`

// startCapture turns off SQLite's own checkpoints, reads the transaction
// number and moves the WAL tail past what is already in the WAL (written
// before this open: durable or not, it is not this store's to hand out).
func (s *Store) startCapture() error {
	if err := s.execInternal("PRAGMA wal_autocheckpoint = 0"); err != nil {
		return err
	}
	rows, err := s.queryInternal("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_dura_tx'")
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		rows, err = s.queryInternal("SELECT n FROM _dura_tx WHERE id = 1")
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			s.tx = uint64(rows[0][0].(int64))
		}
		s.txReady = true
	}
	s.wal = newWALTail(s.cfg.Path)
	if _, err := s.wal.read(); err != nil {
		return err
	}
	return nil
}

// bumpTx records the next transaction number in the event's transaction.
func (s *Store) bumpTx() error {
	if !s.txReady {
		if err := s.execInternal(txSchema); err != nil {
			return err
		}
		s.txReady = true
	}
	return s.execInternal("INSERT INTO _dura_tx (id, n) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n", int64(s.tx+1))
}

// captured reads the commit just made from the WAL. A transaction that
// changed no page has no record.
func (s *Store) captured(numbered bool) error {
	recs, err := s.wal.read()
	if err != nil {
		return fmt.Errorf("capture commit: %w", err)
	}
	if numbered {
		s.tx++
	}
	for i := range recs {
		recs[i].Tx = s.tx
	}
	s.records = append(s.records, recs...)
	return nil
}

// TakeRecords returns the records committed since the last call (with
// Config.Capture), in commit order.
func (s *Store) TakeRecords() []Record {
	out := s.records
	s.records = nil
	return out
}

// TxNumber is the number of the object's last committed transaction that
// wrote (with Config.Capture; it is stored in the database).
func (s *Store) TxNumber() uint64 { return s.tx }

// Checkpoint copies the WAL into the database file, syncs the file and
// empties the WAL. With Config.Capture this is the only checkpoint
// besides the one on close; take the records first.
func (s *Store) Checkpoint() error {
	if s.closed {
		return ErrClosed
	}
	if s.conn == nil {
		return nil // parked: the close checkpointed
	}
	rows, err := s.queryInternal("PRAGMA wal_checkpoint(TRUNCATE)")
	if err != nil {
		return err
	}
	if len(rows) > 0 && rows[0][0].(int64) != 0 {
		return fmt.Errorf("%w: checkpoint blocked", apierr.ErrInternal)
	}
	if s.wal != nil {
		// The WAL is empty now; the next commit starts a new generation.
		s.wal.valid = false
	}
	return nil
}

// WALBytes is how far the WAL holds committed frames since the last
// checkpoint (with Config.Capture, read off the WAL tail: no I/O).
func (s *Store) WALBytes() int64 {
	if s.wal == nil || !s.wal.valid {
		return 0
	}
	return s.wal.off
}

// readOnly reports whether a user statement cannot write: a SELECT,
// VALUES or EXPLAIN. Anything else may, and makes the event one to number.
func readOnly(stmt string) bool {
	switch strings.ToUpper(firstWord(strings.TrimLeft(stmt, " \t\n\r\f"))) {
	case "SELECT", "VALUES", "EXPLAIN":
		return true
	}
	return false
}

// QuickCheck runs SQLite's quick_check on the database file at path
// (nothing else may have it open), for a file rebuilt from records.
func QuickCheck(path string) error {
	c, err := openConn(path, "_journal_mode=WAL")
	if err != nil {
		return fmt.Errorf("quick_check %s: %w", path, err)
	}
	defer c.Close()
	rows, err := c.Query("PRAGMA quick_check", nil)
	if err != nil {
		return fmt.Errorf("quick_check %s: %w", path, err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return fmt.Errorf("quick_check %s: %w", path, err)
	}
	if s, _ := dest[0].(string); s != "ok" {
		return fmt.Errorf("quick_check %s: %v", path, dest[0])
	}
	return nil
}

// CheckpointFile brings a database file no Store of this process writes
// up to date with its WAL (a TRUNCATE checkpoint through a connection of
// its own), so the file alone is the database: what a page-identical
// copy of it needs. A connection still closing may hold the WAL; the
// busy timeout waits for it.
func CheckpointFile(path string) error {
	if _, err := os.Stat(path + "-wal"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	c, err := openConn(path, "_busy_timeout=5000")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, classify(err))
	}
	defer c.Close()
	rows, err := c.Query("PRAGMA wal_checkpoint(TRUNCATE)", nil)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, classify(err))
	}
	vals, err := drain(rows)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, classify(err))
	}
	if len(vals) > 0 && vals[0][0].(int64) != 0 {
		return fmt.Errorf("%w: checkpoint of %s blocked", apierr.ErrInternal, path)
	}
	return nil
}
