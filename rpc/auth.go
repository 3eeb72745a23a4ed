package rpc

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
)

// HeaderCaller names, on node-to-node requests, who the entry node
// authenticated: "admin", "api" or "anonymous". Only a trusted peer
// connection carries it; clients cannot set it.
const HeaderCaller = "X-Dura-Caller"

// internalPrefix starts the node-to-node routes, served only by
// PeerHandler.
const internalPrefix = "/v1/internal/"

type callerKey struct{}
type trustedPeerKey struct{}

// Handler is the API as clients see it, on the public HTTP listener: the
// node-to-node routes are not there, and a caller is who its token says.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, internalPrefix) {
			w.Header().Set(HeaderNode, s.cfg.Backend.NodeName())
			s.writeError(w, fmt.Errorf("%w: no route for %s %s", apierr.ErrNotFound, r.Method, r.URL.Path))
			return
		}
		r.Header.Del(HeaderCaller)
		r.Header.Del(HeaderChain)
		s.mux.ServeHTTP(w, r)
	})
}

// PeerHandler is the API as other nodes see it, on the peer port: every
// route, the node-to-node ones included. With trusted (the port admits
// only authenticated nodes) the caller is the one the entry node
// authenticated; without (a plain port) tokens are checked as on Handler.
func (s *Server) PeerHandler(trusted bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if trusted {
			r = r.WithContext(context.WithValue(r.Context(), trustedPeerKey{}, true))
		} else {
			r.Header.Del(HeaderCaller)
		}
		s.mux.ServeHTTP(w, r)
	})
}

// authorize says who the caller is, or why it may not use the route:
// /v1/ routes need the admin token (when one is set), /objects/ routes
// the API or admin token (when an API token is set); /healthz, /readyz
// and /metrics are open. A missing or unknown token is UNAUTHENTICATED, a
// token without the route's scope FORBIDDEN.
func (s *Server) authorize(r *http.Request) (string, error) {
	if trusted, _ := r.Context().Value(trustedPeerKey{}).(bool); trusted {
		if c := r.Header.Get(HeaderCaller); c != "" {
			return c, nil
		}
		return "peer", nil
	}
	path := r.URL.Path
	needAdmin := strings.HasPrefix(path, "/v1/") && len(s.adminTokens) > 0
	needAPI := (strings.HasPrefix(path, "/objects/") || strings.HasPrefix(path, "/rpc/")) && len(s.apiTokens) > 0
	token, hasToken := bearer(r)
	isAdmin := hasToken && s.adminTokens.has(token)
	isAPI := hasToken && s.apiTokens.has(token)
	caller := "anonymous"
	switch {
	case isAdmin:
		caller = "admin"
	case isAPI:
		caller = "api"
	}
	switch {
	case !needAdmin && !needAPI || isAdmin:
		return caller, nil
	case needAPI && isAPI:
		return caller, nil
	case needAdmin && isAPI:
		return caller, fmt.Errorf("%w: the API token does not grant %s; it needs the admin token", apierr.ErrForbidden, path)
	case hasToken:
		return caller, fmt.Errorf("%w: the bearer token is not valid here", apierr.ErrUnauthenticated)
	case needAdmin:
		return caller, fmt.Errorf("%w: this route needs \"Authorization: Bearer <admin token>\"", apierr.ErrUnauthenticated)
	default:
		return caller, fmt.Errorf("%w: this route needs \"Authorization: Bearer <API token>\"", apierr.ErrUnauthenticated)
	}
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return token, ok && token != ""
}

// tokens are the accepted bearer tokens of one scope (several during a
// rotation), split once from their comma-separated configuration.
type tokens [][]byte

func parseTokens(list string) tokens {
	var out tokens
	for _, t := range strings.Split(list, ",") {
		if t != "" {
			out = append(out, []byte(t))
		}
	}
	return out
}

// HasToken reports whether token is one of list's comma-separated
// tokens (for node-to-node streams outside HTTP).
func HasToken(list, token string) bool { return parseTokens(list).has(token) }

// has reports, in constant time per candidate, whether token is one of them.
func (ts tokens) has(token string) bool {
	found := 0
	for _, t := range ts {
		found |= subtle.ConstantTimeCompare([]byte(token), t)
	}
	return found == 1
}

// callerOf is who the request's caller was authenticated as.
func callerOf(r *http.Request) string {
	c, _ := r.Context().Value(callerKey{}).(string)
	return c
}
