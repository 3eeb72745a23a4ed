package rpc

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/dura-dev/dura/internal/apierr"
)

// MaxHops is how many times a request may be forwarded before a node
// answers OWNER_UNAVAILABLE instead (placement views that disagree must
// not bounce a request around).
const MaxHops = 2

// HeaderEpoch carries the forwarding node's ring epoch.
const HeaderEpoch = "X-Dura-Epoch"

// Router says where an object's requests run. The cluster implements it;
// without one every request runs here.
type Router interface {
	// Route returns local=true when this node serves the object now, or
	// the address (host:port) the Forwarder reaches the owner at, or an
	// error wrapping apierr.ErrOwnerUnavailable when no node can serve it
	// safely now.
	Route(class, name string) (owner string, local bool, err error)
	// Epoch is the ring epoch of this node's committed view.
	Epoch() uint64
}

// hopHeaders are per-connection headers a proxy must not pass on.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// routed wraps an object route: run it here, or stream it to the owner.
func (s *Server) routed(h handlerFunc) handlerFunc {
	if s.cfg.Router == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		owner, local, err := s.cfg.Router.Route(r.PathValue("class"), r.PathValue("name"))
		if err != nil {
			return err
		}
		if local {
			return h(w, r)
		}
		return s.forward(w, r, owner)
	}
}

// forward streams r to owner and its answer back, bodies unbuffered.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, owner string) error {
	n := hops(r) + 1
	if n > MaxHops {
		return fmt.Errorf("%w: request forwarded %d times without reaching the owner", apierr.ErrOwnerUnavailable, n-1)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+owner+r.URL.RequestURI(), r.Body)
	if err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrInternal, err)
	}
	out.ContentLength = r.ContentLength
	for k, v := range r.Header {
		out.Header[k] = v
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Set(HeaderHops, strconv.Itoa(n))
	out.Header.Set(HeaderCaller, callerOf(r))
	out.Header.Set(HeaderEpoch, strconv.FormatUint(s.cfg.Router.Epoch(), 10))
	resp, err := s.cfg.Forwarder.Do(out)
	if err != nil {
		return fmt.Errorf("%w: owner %s unreachable: %v", apierr.ErrOwnerUnavailable, owner, err)
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return werr
			}
			if f, ok := w.(http.Flusher); ok && m == len(buf) {
				f.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// copyBufs recycles the buffers forwarded bodies stream through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
