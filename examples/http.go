package examples

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/dura-dev/dura/node"
)

// Bounds shared by the list routes: the guide's rule is that no query runs
// without a LIMIT, so callers may pick a page size but never an unbounded one.
const (
	defaultPage = 50
	maxPage     = 100
	// maxJSONBody caps request bodies decoded as JSON; rows are capped at
	// 2 MiB by the sandbox anyway, and a smaller cap fails faster.
	maxJSONBody = 1 << 20
)

// handlerFunc is a route handler. Returning an error rolls the event back
// and lets the runtime answer with the matching API error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// router dispatches with http.ServeMux patterns to handlers that return
// errors. ServeMux handlers cannot return anything, so the outcome travels
// back through a slot in the request context.
type router struct{ mux *http.ServeMux }

type outcomeKey struct{}

type outcome struct {
	matched bool
	err     error
}

func newRouter() *router { return &router{mux: http.NewServeMux()} }

func (rt *router) handle(pattern string, h handlerFunc) {
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		o := r.Context().Value(outcomeKey{}).(*outcome)
		o.matched = true
		o.err = h(w, r)
	})
}

// serve runs the matching handler. When nothing matches, ServeMux has
// written its own plain-text 404/405/redirect; returning an error makes
// the runtime drop it and answer with a JSON NOT_FOUND instead.
func (rt *router) serve(w http.ResponseWriter, r *http.Request) error {
	o := &outcome{}
	rt.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), outcomeKey{}, o)))
	if !o.matched {
		return noRoute(r)
	}
	return o.err
}

func noRoute(r *http.Request) error {
	return fmt.Errorf("%w: no route for %s %s", node.ErrNotFound, r.Method, r.URL.Path)
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// readBody reads the whole request body, refusing more than limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", node.ErrBadRequest, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body is larger than %d bytes", node.ErrTooLarge, limit)
	}
	return b, nil
}

// readJSON decodes the request body into v.
func readJSON(r *http.Request, v any) error {
	b, err := readBody(r, maxJSONBody)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: body is not the expected JSON: %v", node.ErrBadRequest, err)
	}
	return nil
}

// queryInt parses an optional integer query parameter within [lo, hi].
func queryInt(q url.Values, name string, def, lo, hi int64) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s must be an integer, got %q", node.ErrBadRequest, name, s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s must be between %d and %d, got %d", node.ErrBadRequest, name, lo, hi, n)
	}
	return n, nil
}

// queryLimit is the page size of a list route.
func queryLimit(q url.Values) (int, error) {
	n, err := queryInt(q, "limit", defaultPage, 1, maxPage)
	return int(n), err
}

// queryBool reads a flag such as ?grace=1; an absent flag is false.
func queryBool(q url.Values, name string) (bool, error) {
	s := q.Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%w: %s must be a boolean, got %q", node.ErrBadRequest, name, s)
	}
	return b, nil
}

// missing reports a mandatory field left empty.
func missing(field string) error {
	return fmt.Errorf("%w: %s is required", node.ErrBadRequest, field)
}

// newID returns a random, URL-safe identifier for rows the server names.
func newID() string { return rand.Text() }
