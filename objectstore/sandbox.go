package objectstore

import (
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Limits of the sandbox. They are part of the API contract (README, "Limits").
const (
	// MaxStatementBytes is the longest query text accepted by Exec.
	MaxStatementBytes = 100 * 1024
	// MaxParams is the most bound parameters one statement may take.
	MaxParams = 100
	// MaxValueBytes is the largest string, blob or row SQLite will build.
	MaxValueBytes = 2 * 1024 * 1024
	// MaxColumns is the most columns a table, index or result may have.
	MaxColumns = 100
	// MaxResultBytes bounds the rows one Exec may return (approximate
	// in-memory size).
	MaxResultBytes = 64 << 20
	// MaxKeyBytes is the longest KV key.
	MaxKeyBytes = 2048
	// ReservedPrefix starts every name Dura keeps for itself.
	ReservedPrefix = "_dura_"
)

// allowedPragmas are the pragmas user SQL may run. A pragma that takes a
// value is listed with true; read-only pragmas with false refuse a value.
var allowedPragmas = map[string]bool{
	"table_info":          false,
	"table_xinfo":         false,
	"table_list":          false,
	"index_list":          false,
	"index_info":          false,
	"index_xinfo":         false,
	"foreign_key_list":    false,
	"foreign_key_check":   false,
	"integrity_check":     false,
	"quick_check":         false,
	"page_count":          false,
	"page_size":           false,
	"freelist_count":      false,
	"data_version":        false,
	"defer_foreign_keys":  true,
	"case_sensitive_like": true,
	"user_version":        true,
	"optimize":            false,
	"function_list":       false,
	"pragma_list":         false,
	"collation_list":      false,
	"compile_options":     false,
}

func isReserved(name string) bool {
	return len(name) >= len(ReservedPrefix) && strings.EqualFold(name[:len(ReservedPrefix)], ReservedPrefix)
}

// authorize is the SQLite authorizer. While the store runs its own
// statements (internal) everything is allowed; user statements are held to
// the sandbox rules. SQLite calls it when it prepares (or re-prepares) a
// statement, so the store sets internal around execution, not just prepare.
func (s *Store) authorize(op int, arg1, arg2, arg3 string) int {
	if s.internal {
		return sqlite3.SQLITE_OK
	}
	deny := func(why string) int {
		s.denied = why
		return sqlite3.SQLITE_DENY
	}
	switch op {
	case sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH:
		return deny("ATTACH and DETACH are not allowed")
	case sqlite3.SQLITE_TRANSACTION:
		return deny("raw transaction control is not allowed")
	case sqlite3.SQLITE_FUNCTION:
		if strings.EqualFold(arg2, "load_extension") {
			return deny("load_extension is not allowed")
		}
		return sqlite3.SQLITE_OK
	case sqlite3.SQLITE_PRAGMA:
		name := strings.ToLower(arg1)
		takesValue, ok := allowedPragmas[name]
		if !ok {
			return deny("PRAGMA " + name + " is not allowed")
		}
		if arg2 != "" && !takesValue && !isTableArgPragma(name) {
			return deny("PRAGMA " + name + " cannot be set")
		}
		if isReserved(arg2) {
			return deny("names beginning " + ReservedPrefix + " are reserved")
		}
		return sqlite3.SQLITE_OK
	case sqlite3.SQLITE_SAVEPOINT:
		if isReserved(arg2) {
			return deny("savepoint names beginning " + ReservedPrefix + " are reserved")
		}
		return sqlite3.SQLITE_OK
	}
	if isReserved(arg1) || isReserved(arg2) {
		return deny("names beginning " + ReservedPrefix + " are reserved")
	}
	// The schema table itself needs no rule: DDL legitimately writes it, and
	// direct DML on it needs writable_schema, which is refused above.
	return sqlite3.SQLITE_OK
}

// isTableArgPragma names the read-only pragmas whose argument is a table or
// index name rather than a new value.
func isTableArgPragma(name string) bool {
	switch name {
	case "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
		"foreign_key_list", "foreign_key_check", "integrity_check", "quick_check":
		return true
	}
	return false
}

// applyLimits sets SQLite's own run-time limits on a connection.
func applyLimits(c *sqlite3.SQLiteConn) {
	c.SetLimit(sqlite3.SQLITE_LIMIT_LENGTH, MaxValueBytes)
	c.SetLimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MaxStatementBytes)
	c.SetLimit(sqlite3.SQLITE_LIMIT_COLUMN, MaxColumns)
	c.SetLimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MaxParams)
	c.SetLimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
	c.SetLimit(sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 32)
}
