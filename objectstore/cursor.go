package objectstore

import (
	"fmt"
	"math"
	"strconv"
)

// Cursor holds the result of Exec: the rows of its last statement and the
// counters of the whole call. The rows are read in full before Exec
// returns, so a cursor stays valid after later statements.
type Cursor struct {
	cols         []string
	rows         [][]any
	pos          int
	rowsRead     int64
	rowsWritten  int64
	changes      int64
	lastInsertID int64
}

// ColumnNames are the result columns, in order.
func (c *Cursor) ColumnNames() []string { return c.cols }

// RowsRead is the number of rows returned (see the package doc).
func (c *Cursor) RowsRead() int64 { return c.rowsRead }

// RowsWritten is the number of rows inserted, updated or deleted, including
// by triggers and foreign-key actions.
func (c *Cursor) RowsWritten() int64 { return c.rowsWritten }

// Changes is SQLite's changes() for the last statement: rows it inserted,
// updated or deleted directly, 0 for a statement that wrote nothing.
func (c *Cursor) Changes() int64 { return c.changes }

// LastInsertID is SQLite's last_insert_rowid() after the call.
func (c *Cursor) LastInsertID() int64 { return c.lastInsertID }

// Raw returns the rows as value slices (int64, float64, string, []byte or nil).
func (c *Cursor) Raw() [][]any { return c.rows }

// Len is the number of rows.
func (c *Cursor) Len() int { return len(c.rows) }

// Next moves to the next row; it reports false when there is none.
func (c *Cursor) Next() bool {
	if c.pos >= len(c.rows) {
		return false
	}
	c.pos++
	return true
}

// Scan copies the current row into dest, one pointer per column:
// *int64, *int, *float64, *string, *[]byte, *bool or *any.
func (c *Cursor) Scan(dest ...any) error {
	if c.pos == 0 || c.pos > len(c.rows) {
		return fmt.Errorf("%w: Scan called without a current row", ErrBadRequest)
	}
	return scanRow(c.cols, c.rows[c.pos-1], dest)
}

// ToArray returns every row as a map from column name to value.
func (c *Cursor) ToArray() []map[string]any {
	out := make([]map[string]any, len(c.rows))
	for i, r := range c.rows {
		out[i] = c.rowMap(r)
	}
	return out
}

// One returns the only row, or ErrNotOneRow when there are zero or several.
func (c *Cursor) One() (map[string]any, error) {
	if len(c.rows) != 1 {
		return nil, fmt.Errorf("%w: got %d", ErrNotOneRow, len(c.rows))
	}
	return c.rowMap(c.rows[0]), nil
}

// ScanOne scans the only row into dest, or fails with ErrNotOneRow.
func (c *Cursor) ScanOne(dest ...any) error {
	if len(c.rows) != 1 {
		return fmt.Errorf("%w: got %d", ErrNotOneRow, len(c.rows))
	}
	return scanRow(c.cols, c.rows[0], dest)
}

func (c *Cursor) rowMap(r []any) map[string]any {
	m := make(map[string]any, len(c.cols))
	for i, name := range c.cols {
		m[name] = r[i]
	}
	return m
}

func scanRow(cols []string, row []any, dest []any) error {
	if len(dest) != len(row) {
		return fmt.Errorf("%w: Scan wants %d destinations, got %d", ErrBadRequest, len(row), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, row[i]); err != nil {
			return fmt.Errorf("%w: column %q: %v", ErrBadRequest, cols[i], err)
		}
	}
	return nil
}

func assign(dest, v any) error {
	switch d := dest.(type) {
	case *any:
		*d = v
		return nil
	case *int64:
		n, err := asInt(v)
		*d = n
		return err
	case *int:
		n, err := asInt(v)
		*d = int(n)
		return err
	case *float64:
		switch x := v.(type) {
		case float64:
			*d = x
		case int64:
			*d = float64(x)
		case nil:
			*d = 0
		case string:
			f, err := strconv.ParseFloat(x, 64)
			*d = f
			return err
		default:
			return fmt.Errorf("cannot scan %T into *float64", v)
		}
		return nil
	case *string:
		switch x := v.(type) {
		case string:
			*d = x
		case []byte:
			*d = string(x)
		case int64:
			*d = strconv.FormatInt(x, 10)
		case float64:
			*d = strconv.FormatFloat(x, 'g', -1, 64)
		case nil:
			*d = ""
		}
		return nil
	case *[]byte:
		switch x := v.(type) {
		case []byte:
			*d = append([]byte(nil), x...)
		case string:
			*d = []byte(x)
		case nil:
			*d = nil
		default:
			return fmt.Errorf("cannot scan %T into *[]byte", v)
		}
		return nil
	case *bool:
		n, err := asInt(v)
		*d = n != 0
		return err
	}
	return fmt.Errorf("unsupported Scan destination %T", dest)
}

func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		// SQLite turns an overflowing integer sum into a REAL; 2^63 itself
		// is out of range.
		if x >= 1<<63 || x < -(1<<63) {
			return 0, fmt.Errorf("%v overflows int64", x)
		}
		return int64(x), nil
	case nil:
		return 0, nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("cannot scan %T into an integer", v)
}
