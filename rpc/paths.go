package rpc

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
)

// cleanMux is the API's ServeMux behind a check that answers 400 to a
// request whose path has empty, "." or ".." segments, instead of letting
// ServeMux redirect it to the cleaned path: a client that follows the 307
// repeats the method there, so a DELETE of KV key ".."
// (/v1/objects/db/x/kv/..) would delete the object /v1/objects/db/x, and a
// PUT of key "a/../b" sent unescaped would overwrite "b". Such names and
// keys travel escaped (EscapeSegment).
type cleanMux struct {
	*http.ServeMux
	s *Server
}

func newCleanMux(s *Server) *cleanMux { return &cleanMux{ServeMux: http.NewServeMux(), s: s} }

func (m *cleanMux) refuse(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set(HeaderNode, m.s.cfg.Backend.NodeName())
	w.Header().Set(HeaderHops, strconv.Itoa(hops(r)))
	m.s.writeError(w, err)
	m.s.requests.WithLabelValues("", "unknown", strconv.Itoa(http.StatusBadRequest)).Inc()
}

// ServeHTTP serves r through the mux if its path is clean.
func (m *cleanMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case r.Method == http.MethodConnect:
	case !isCleanPath(p):
		m.refuse(w, r, fmt.Errorf("%w: path %q has an empty, '.' or '..' segment; escape '/' and '.' in class, name and key (%%2F, %%2E)",
			apierr.ErrBadRequest, truncatePath(p)))
		return
	default:
		if why := badObjectSegment(p); why != "" {
			m.refuse(w, r, fmt.Errorf("%w: %s", apierr.ErrBadRequest, why))
			return
		}
	}
	m.ServeMux.ServeHTTP(w, r)
}

// isCleanPath reports whether ServeMux would serve p as it is: rooted, no
// empty, "." or ".." segments (a trailing slash is fine).
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// badObjectSegment says why an object route's class or name segment
// cannot reach an object, or "" if it can. An empty one (".../db/") would
// match no route; one that is exactly an escaped "/" neither, as ServeMux
// takes a segment that unescapes to "/" for a trailing slash. Both are
// refused plainly rather than answered "no route".
func badObjectSegment(escaped string) string {
	rest, ok := strings.CutPrefix(escaped, "/v1/objects/")
	if !ok {
		if rest, ok = strings.CutPrefix(escaped, "/objects/"); !ok {
			return ""
		}
	}
	segs := strings.SplitN(rest, "/", 3)
	for i, s := range segs[:min(2, len(segs))] {
		what := [2]string{"class", "object name"}[i]
		switch {
		case s == "":
			return "empty " + what
		case strings.EqualFold(s, "%2F"):
			return "an " + what + " of exactly \"/\" cannot be addressed over HTTP (the router reads %2F alone as a trailing slash)"
		}
	}
	return ""
}

func truncatePath(p string) string {
	if len(p) > 200 {
		return p[:200] + "..."
	}
	return p
}

// EscapeSegment escapes s as one path segment: url.PathEscape, and "." and
// ".." spelled %2E and %2E%2E, which ServeMux does not treat as dot segments.
func EscapeSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}
