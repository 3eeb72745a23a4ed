package rpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
)

// CallObject runs an object-to-object call (a stub's Fetch) for
// class/name. When this node serves the object it answers local=true and
// the caller runs it here; otherwise the call goes to the owner like a
// forwarded request (same fencing, hop limit and caller identity, and
// the same wait for a briefly unavailable owner) carrying chain, the IDs
// of the objects waiting on it. An error answer of the node (not of the
// class's handler) comes back as an error with its code, as a local call
// would return it.
func (s *Server) CallObject(ctx context.Context, class, name string, req *http.Request, chain []string) (*http.Response, bool, error) {
	return s.callOwner(ctx, "/objects", class, name, req, chain)
}

// callOwner sends a call to the owner's route under prefix (/objects or
// /rpc) with req's path and query after the object's, as CallObject says.
func (s *Server) callOwner(ctx context.Context, prefix, class, name string, req *http.Request, chain []string) (*http.Response, bool, error) {
	if s.cfg.Router == nil {
		return nil, true, nil
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(req.Body, MaxCallBody+1))
		req.Body.Close()
		if err != nil {
			return nil, false, fmt.Errorf("%w: read the call's body: %v", apierr.ErrBadRequest, err)
		}
		if len(b) > MaxCallBody {
			return nil, false, fmt.Errorf("%w: call body over %d bytes", apierr.ErrTooLarge, MaxCallBody)
		}
		body = b
	}
	var wt waiter
	defer wt.done(s)
	for {
		changed := s.cfg.Router.Changed()
		owner, local, err := s.cfg.Router.Route(class, name)
		if err == nil && local {
			return nil, true, nil
		}
		var resp *http.Response
		if err == nil {
			resp, err = s.sendCall(ctx, owner, prefix, class, name, req, body, chain)
		}
		if err == nil {
			return resp, false, nil
		}
		if !retryable(err) || !wt.wait(s, ctx, changed) {
			return nil, false, err
		}
	}
}

// sendCall sends one object-to-object call to owner and reads its answer.
func (s *Server) sendCall(ctx context.Context, owner Peer, prefix, class, name string, req *http.Request, body []byte, chain []string) (*http.Response, error) {
	path := req.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if path == "/" {
		path = ""
	}
	u := "http://" + owner.Addr + prefix + ObjectPath(class, name) + path
	if req.URL.RawQuery != "" {
		u += "?" + req.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(ctx, req.Method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	caller, _ := ctx.Value(callerKey{}).(string)
	if caller == "" {
		caller = "node"
	}
	s.forwarded(out, req.Header, 1, caller)
	out.Header.Set(HeaderChain, strings.Join(chain, ","))
	if len(s.adminTokens) > 0 {
		// A plain peer port checks tokens as the client port does.
		out.Header.Set("Authorization", "Bearer "+string(s.adminTokens[0]))
	}
	resp, err := s.cfg.Forwarder.Do(out)
	if err != nil {
		return nil, PeerError(owner, err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(HeaderError) != "" {
		return nil, decodeError(resp)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, PeerError(owner, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	for _, h := range []string{HeaderHops, HeaderEpoch, HeaderError} {
		resp.Header.Del(h)
	}
	return resp, nil
}
