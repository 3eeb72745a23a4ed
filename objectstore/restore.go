package objectstore

import (
	"bytes"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// alarmSchema mirrors the object's alarm in its own database, written in
// the event that changes it, so a copy of the database as of any commit
// says what the alarm was then (point-in-time restores bring it back).
const alarmSchema = `CREATE TABLE IF NOT EXISTS _dura_alarm (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)`

// MirrorAlarm records the alarm the event leaves (set, at at) or its
// absence in the event's transaction. Clearing an alarm the database
// never recorded writes nothing.
func (s *Store) MirrorAlarm(at time.Time, set bool) error {
	if !s.inEvent {
		return fmt.Errorf("%w: no event open", ErrBadRequest)
	}
	if set {
		if err := s.execInternal(alarmSchema); err != nil {
			return err
		}
		return s.execInternal("INSERT INTO _dura_alarm (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at", at.UnixMilli())
	}
	rows, err := s.queryInternal("SELECT 1 FROM _dura_alarm WHERE id = 1 AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_dura_alarm')")
	if err != nil && !isNoSuchTable(err) {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	return s.execInternal("DELETE FROM _dura_alarm")
}

func isNoSuchTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}

// PrepareRestore readies the database file at path (a copy rebuilt as of
// an earlier commit, opened by nothing else) to become the object's next
// commit: its transaction number set to tx, its WAL folded in. It
// returns the alarm the copy records (none without one).
func PrepareRestore(path string, tx uint64) (alarm time.Time, has bool, err error) {
	c, err := openConn(path, "_journal_mode=WAL")
	if err != nil {
		return time.Time{}, false, fmt.Errorf("prepare restore: %w", classify(err))
	}
	defer c.Close()
	exec := func(q string, args ...any) ([][]any, error) {
		vals := make([]driver.Value, len(args))
		for i, a := range args {
			vals[i] = a
		}
		rows, err := c.Query(q, vals)
		if err != nil {
			return nil, err
		}
		return drain(rows)
	}
	if _, err := exec(txSchema); err != nil {
		return time.Time{}, false, fmt.Errorf("prepare restore: %w", classify(err))
	}
	if _, err := exec("INSERT INTO _dura_tx (id, n) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n", int64(tx)); err != nil {
		return time.Time{}, false, fmt.Errorf("prepare restore: %w", classify(err))
	}
	rows, err := exec("SELECT at FROM _dura_alarm WHERE id = 1")
	if err != nil && !isNoSuchTable(err) {
		return time.Time{}, false, fmt.Errorf("prepare restore: %w", classify(err))
	}
	if len(rows) > 0 {
		alarm, has = time.UnixMilli(rows[0][0].(int64)), true
	}
	if _, err := exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return time.Time{}, false, fmt.Errorf("prepare restore: %w", classify(err))
	}
	return alarm, has, nil
}

// pageSizeOf reads a database file's page size from its header.
func pageSizeOf(f *os.File) (int, error) {
	var h [18]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, fmt.Errorf("read database header of %s: %w", f.Name(), err)
	}
	n := int(binary.BigEndian.Uint16(h[16:18]))
	if n == 1 {
		n = 65536
	}
	if n < 512 || n&(n-1) != 0 {
		return 0, fmt.Errorf("%s: page size %d is not a database's", f.Name(), n)
	}
	return n, nil
}

// WholeRecord reads the database file at path (checkpointed, no writer)
// as a record of every page, numbered tx.
func WholeRecord(path string, tx uint64) (Record, error) {
	return DiffRecord("", path, tx)
}

// DiffRecord is the record that turns the database file at from into the
// one at to (both checkpointed, no writer): the pages of to that differ,
// numbered tx; every page when from is "".
func DiffRecord(from, to string, tx uint64) (Record, error) {
	nf, err := os.Open(to)
	if err != nil {
		return Record{}, err
	}
	defer nf.Close()
	ps, err := pageSizeOf(nf)
	if err != nil {
		return Record{}, err
	}
	st, err := nf.Stat()
	if err != nil {
		return Record{}, err
	}
	rec := Record{Tx: tx, PageSize: ps, DBPages: uint32(st.Size() / int64(ps)), Pages: map[uint32][]byte{}}
	var old *os.File
	if from != "" {
		if old, err = os.Open(from); err != nil {
			return Record{}, err
		}
		defer old.Close()
		if ops, err := pageSizeOf(old); err != nil || ops != ps {
			old = nil // another page size: every page differs
		}
	}
	prev := make([]byte, ps)
	for pg := uint32(1); pg <= rec.DBPages; pg++ {
		img := make([]byte, ps)
		if _, err := nf.ReadAt(img, int64(pg-1)*int64(ps)); err != nil {
			return Record{}, fmt.Errorf("read page %d of %s: %w", pg, to, err)
		}
		if old != nil {
			n, err := old.ReadAt(prev, int64(pg-1)*int64(ps))
			if err != nil && err != io.EOF {
				return Record{}, err
			}
			if n == ps && bytes.Equal(prev, img) {
				continue
			}
		}
		rec.Pages[pg] = img
	}
	return rec, nil
}
