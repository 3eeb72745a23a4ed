// Package apierr holds the sentinel errors shared from the SQL layer up to
// the HTTP API, and the one table that maps them to API codes and statuses.
package apierr

import (
	"errors"
	"net/http"
	"strings"
)

// Sentinel errors. Lower layers wrap them with %w; the HTTP layer maps them
// with Code. Each comment names the API code.
var (
	ErrBadRequest       = errors.New("bad request")       // BAD_REQUEST 400
	ErrUnauthenticated  = errors.New("unauthenticated")   // UNAUTHENTICATED 401
	ErrForbidden        = errors.New("forbidden")         // FORBIDDEN 403
	ErrUnknownClass     = errors.New("unknown class")     // UNKNOWN_CLASS 404
	ErrNotFound         = errors.New("not found")         // NOT_FOUND 404
	ErrSQL              = errors.New("sql error")         // SQL_ERROR 400
	ErrConstraint       = errors.New("constraint failed") // CONSTRAINT 409
	ErrConflict         = errors.New("conflict")          // CONFLICT 409
	ErrNotAuthorized    = errors.New("not authorized")    // NOT_AUTHORIZED 403
	ErrTooLarge         = errors.New("too large")         // TOO_LARGE 413
	ErrStorageFull      = errors.New("storage full")      // STORAGE_FULL 507
	ErrOwnerUnavailable = errors.New("owner unavailable") // OWNER_UNAVAILABLE 503
	// ErrDataMissing is OWNER_UNAVAILABLE that waiting does not cure: the
	// owner lost the partition's data (a wiped disk).
	ErrDataMissing = errors.New("data missing")   // OWNER_UNAVAILABLE 503
	ErrTimeout     = errors.New("timed out")      // TIMEOUT 504
	ErrInternal    = errors.New("internal error") // INTERNAL 500
	// ErrException is an uncaught exception of a JavaScript class.
	ErrException = errors.New("exception") // EXCEPTION 500
)

var table = []struct {
	err    error
	code   string
	status int
}{
	{ErrBadRequest, "BAD_REQUEST", http.StatusBadRequest},
	{ErrUnauthenticated, "UNAUTHENTICATED", http.StatusUnauthorized},
	{ErrForbidden, "FORBIDDEN", http.StatusForbidden},
	{ErrUnknownClass, "UNKNOWN_CLASS", http.StatusNotFound},
	{ErrNotFound, "NOT_FOUND", http.StatusNotFound},
	{ErrSQL, "SQL_ERROR", http.StatusBadRequest},
	{ErrConstraint, "CONSTRAINT", http.StatusConflict},
	// Handlers' conflicts (overdraft, stale version, call cycle) share
	// the documented 409 code rather than add one to the contract.
	{ErrConflict, "CONSTRAINT", http.StatusConflict},
	{ErrNotAuthorized, "NOT_AUTHORIZED", http.StatusForbidden},
	{ErrTooLarge, "TOO_LARGE", http.StatusRequestEntityTooLarge},
	{ErrStorageFull, "STORAGE_FULL", http.StatusInsufficientStorage},
	{ErrOwnerUnavailable, "OWNER_UNAVAILABLE", http.StatusServiceUnavailable},
	{ErrDataMissing, "OWNER_UNAVAILABLE", http.StatusServiceUnavailable},
	{ErrTimeout, "TIMEOUT", http.StatusGatewayTimeout},
	{ErrInternal, "INTERNAL", http.StatusInternalServerError},
	{ErrException, "EXCEPTION", http.StatusInternalServerError},
}

// Code maps an error to its API code and HTTP status; errors wrapping no
// sentinel are INTERNAL 500.
func Code(err error) (code string, status int) {
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e.code, e.status
		}
	}
	return "INTERNAL", http.StatusInternalServerError
}

// FromCode is the sentinel for an API code, for clients decoding errors.
func FromCode(code string) error {
	for _, e := range table {
		if e.code == code {
			return e.err
		}
	}
	return ErrInternal
}

// notExecuted marks an error raised before the operation ran: nothing it
// asked for happened, so a client may retry it without fear of doing it
// twice.
type notExecuted struct{ error }

func (e notExecuted) Unwrap() error     { return e.error }
func (e notExecuted) NotExecuted() bool { return true }

// NotExecuted marks err as raised before the operation ran (nil stays nil).
func NotExecuted(err error) error {
	if err == nil || IsNotExecuted(err) {
		return err
	}
	return notExecuted{err}
}

// IsNotExecuted reports whether err says the operation did not run: it
// was marked by NotExecuted, or it is an error decoded from another node
// that said so.
func IsNotExecuted(err error) bool {
	var ne interface{ NotExecuted() bool }
	return errors.As(err, &ne) && ne.NotExecuted()
}

// Message is err's text for clients: the sentinels' own words ("sql
// error: ", "owner unavailable: ") are dropped, since the API code says
// them already.
func Message(err error) string {
	msg := err.Error()
	for _, e := range table {
		if !errors.Is(err, e.err) {
			continue
		}
		p := e.err.Error() + ": "
		msg = strings.Replace(msg, ": "+p, ": ", -1)
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}
