package objectstore

import (
	"errors"
	"fmt"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/dura-dev/dura/internal/apierr"
)

// Sentinel errors. Every error this package returns wraps exactly one of
// them, so callers map them to API codes with errors.Is.
var (
	// ErrSQL is a statement SQLite rejected: syntax, unknown table, type
	// mismatch and so on. API code SQL_ERROR.
	ErrSQL = apierr.ErrSQL
	// ErrConstraint is a violated UNIQUE, NOT NULL, CHECK or FOREIGN KEY
	// constraint. API code CONSTRAINT.
	ErrConstraint = apierr.ErrConstraint
	// ErrNotAuthorized is a statement the sandbox refuses: reserved names,
	// ATTACH, load_extension, pragmas off the allow-list. API code
	// NOT_AUTHORIZED.
	ErrNotAuthorized = apierr.ErrNotAuthorized
	// ErrTooLarge is a statement, parameter list, value or column list over
	// its limit. API code TOO_LARGE.
	ErrTooLarge = apierr.ErrTooLarge
	// ErrStorageFull is a write that would take the object over its size
	// limit. API code STORAGE_FULL.
	ErrStorageFull = apierr.ErrStorageFull
	// ErrTimeout is a statement that ran past the statement time limit.
	// API code TIMEOUT.
	ErrTimeout = apierr.ErrTimeout
	// ErrNotOneRow is Cursor.One on a result with zero or several rows.
	ErrNotOneRow = fmt.Errorf("%w: expected exactly one row", apierr.ErrNotFound)
	// ErrBadRequest is a call this package refuses before SQLite sees it:
	// an empty query, parameters on a statement that is not the last, an
	// invalid KV key. API code BAD_REQUEST.
	ErrBadRequest = apierr.ErrBadRequest
	// ErrClosed is any use of a Store after Close.
	ErrClosed = fmt.Errorf("%w: object store closed", apierr.ErrInternal)
	// ErrCorrupt is an imported file that is not a sound SQLite database.
	ErrCorrupt = fmt.Errorf("%w: invalid database file", apierr.ErrBadRequest)
	// ErrNoIdentity is a database file that records no object identity:
	// its object's first activation never committed, so it holds nothing.
	ErrNoIdentity = fmt.Errorf("%w: the file records no object identity", ErrCorrupt)
)

// classify wraps a SQLite driver error with the sentinel that names its kind.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		if strings.Contains(err.Error(), "interrupt") {
			return fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		return fmt.Errorf("%w: %v", ErrSQL, err)
	}
	msg := se.Error()
	switch se.Code {
	case sqlite3.ErrConstraint:
		return fmt.Errorf("%w: %s", ErrConstraint, msg)
	case sqlite3.ErrFull:
		return fmt.Errorf("%w: the object reached its size limit (%s)", ErrStorageFull, msg)
	case sqlite3.ErrInterrupt:
		return fmt.Errorf("%w: %s", ErrTimeout, msg)
	case sqlite3.ErrAuth:
		return fmt.Errorf("%w: %s", ErrNotAuthorized, msg)
	case sqlite3.ErrTooBig:
		return fmt.Errorf("%w: %s", ErrTooLarge, msg)
	case sqlite3.ErrCantOpen, sqlite3.ErrIoErr, sqlite3.ErrNomem, sqlite3.ErrCorrupt, sqlite3.ErrReadonly:
		// The server's trouble (files, disk, memory), not the statement's.
		return fmt.Errorf("%w: %s", apierr.ErrInternal, msg)
	}
	switch {
	case strings.HasPrefix(msg, "too many columns"), strings.HasPrefix(msg, "too many SQL variables"):
		return fmt.Errorf("%w: %s", ErrTooLarge, msg)
	case strings.Contains(msg, "not authorized"), strings.Contains(msg, "prohibited"),
		isSchemaTableRefusal(msg):
		return fmt.Errorf("%w: %s", ErrNotAuthorized, msg)
	}
	return fmt.Errorf("%w: %s", ErrSQL, withFTS5Hint(msg))
}

// isSchemaTableRefusal recognises SQLite refusing to let a statement write,
// drop, alter or create its own sqlite_ tables: a sandbox refusal like the
// authorizer's, though SQLite makes it before the authorizer is asked.
func isSchemaTableRefusal(msg string) bool {
	if strings.HasPrefix(msg, "object name reserved for internal use") {
		return true
	}
	if !strings.HasPrefix(msg, "table sqlite_") {
		return false
	}
	return strings.HasSuffix(msg, " may not be modified") || strings.HasSuffix(msg, " may not be dropped") ||
		strings.HasSuffix(msg, " may not be altered")
}
