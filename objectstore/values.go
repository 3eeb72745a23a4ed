package objectstore

import (
	"database/sql/driver"
	"fmt"
	"time"
)

func quoteIdent(name string) string {
	out := []byte{'"'}
	for i := 0; i < len(name); i++ {
		if name[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, name[i])
	}
	return string(append(out, '"'))
}

// bindArgs turns Go values into driver values, refusing types SQLite
// cannot store and values over the size limit.
func bindArgs(args []any) ([]driver.NamedValue, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := toDriver(a)
		if err != nil {
			return nil, fmt.Errorf("parameter %d: %w", i+1, err)
		}
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out, nil
}

func toDriver(a any) (driver.Value, error) {
	switch v := a.(type) {
	case nil:
		return nil, nil
	case int64, float64:
		return v, nil
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint8:
		return int64(v), nil
	case float32:
		return float64(v), nil
	case bool:
		if v {
			return int64(1), nil
		}
		return int64(0), nil
	case string:
		if len(v) > MaxValueBytes {
			return nil, fmt.Errorf("%w: text of %d bytes, the limit is %d", ErrTooLarge, len(v), MaxValueBytes)
		}
		return v, nil
	case []byte:
		if len(v) > MaxValueBytes {
			return nil, fmt.Errorf("%w: blob of %d bytes, the limit is %d", ErrTooLarge, len(v), MaxValueBytes)
		}
		if v == nil {
			return []byte{}, nil
		}
		return v, nil
	case time.Time:
		return v.UnixMilli(), nil
	}
	return nil, fmt.Errorf("%w: %w %T", ErrBadRequest, errUnsupported, a)
}

// fromDriver normalises what go-sqlite3 returns to int64, float64, string,
// []byte or nil. The driver turns columns declared DATE, DATETIME or
// TIMESTAMP into time.Time and BOOLEAN into bool; they come back as text in
// SQLite's own format and as 0/1.
func fromDriver(v driver.Value) any {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format("2006-01-02 15:04:05.999999999")
	case bool:
		if t {
			return int64(1)
		}
		return int64(0)
	}
	return v
}

// valueSize approximates the memory a result value takes.
func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 16
	case []byte:
		return len(x) + 24
	}
	return 16
}
