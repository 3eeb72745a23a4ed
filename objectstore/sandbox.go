package objectstore

import (
	"fmt"
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
		if strings.EqualFold(arg2, "fts3_tokenizer") {
			// Its two-argument form takes a C function pointer; the build
			// disables that form, and the one-argument form has no use here.
			return deny("fts3_tokenizer is not allowed")
		}
		if strings.EqualFold(arg2, "fts5") {
			// fts5(?1) hands C code the module's API through a pointer
			// binding; nothing in SQL text or JSON can use it.
			return deny("fts5() is not allowed")
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
	case sqlite3.SQLITE_ANALYZE:
		// A bare ANALYZE (and PRAGMA optimize, which is allowed) walks
		// every table: skip Dura's own instead of failing the statement.
		if isReserved(arg1) {
			return sqlite3.SQLITE_IGNORE
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
	// SQLite refuses direct DML on it without writable_schema (refused
	// above); classify reports that refusal as NOT_AUTHORIZED.
	return sqlite3.SQLITE_OK
}

// refuseByText refuses the user statements the authorizer cannot see
// coming: VACUUM (it cannot run inside an event's transaction, and VACUUM
// INTO writes a file anywhere) and triggers or views that name reserved
// tables.
func refuseByText(stmt string) error {
	if w := leadingWords(stmt, 1); len(w) == 1 && w[0] == "VACUUM" {
		return fmt.Errorf("%w: VACUUM is not allowed", ErrNotAuthorized)
	}
	if namesReservedInBody(stmt) {
		return fmt.Errorf("%w: a trigger or view may not name anything beginning %s", ErrNotAuthorized, ReservedPrefix)
	}
	return nil
}

// namesReservedInBody reports a CREATE TRIGGER or CREATE VIEW statement
// whose text mentions the reserved prefix anywhere. SQLite resolves the
// names in a trigger's or view's body only when it runs, so the authorizer
// never sees them at creation; and a trigger body is authorized as part of
// the statement that fires it, which may be one of the store's own (DROP
// TABLE in DeleteAll cascading into a child table). Refusing the text is
// sound because SQL has no way to build a name at run time; it may refuse a
// string literal that merely contains the prefix.
func namesReservedInBody(stmt string) bool {
	w := leadingWords(stmt, 3)
	if len(w) < 2 || w[0] != "CREATE" {
		return false
	}
	kind := w[1]
	if (kind == "TEMP" || kind == "TEMPORARY") && len(w) > 2 {
		kind = w[2]
	}
	if kind != "TRIGGER" && kind != "VIEW" {
		return false
	}
	return strings.Contains(strings.ToLower(stmt), ReservedPrefix)
}

// leadingWords returns up to n bare words that begin stmt, upper-cased,
// skipping blanks and comments; it stops at the first other token.
func leadingWords(stmt string, n int) []string {
	var out []string
	for i := 0; i < len(stmt) && len(out) < n; {
		c := stmt[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(stmt) && stmt[i+1] == '-':
			j := strings.IndexByte(stmt[i:], '\n')
			if j < 0 {
				return out
			}
			i += j + 1
		case c == '/' && i+1 < len(stmt) && stmt[i+1] == '*':
			j := strings.Index(stmt[i+2:], "*/")
			if j < 0 {
				return out
			}
			i += j + 4
		case isWordByte(c):
			j := i
			for j < len(stmt) && isWordByte(stmt[j]) {
				j++
			}
			out = append(out, strings.ToUpper(stmt[i:j]))
			i = j
		default:
			return out
		}
	}
	return out
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
