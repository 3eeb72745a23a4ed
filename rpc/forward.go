package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
)

// MaxHops is how many times a request may be forwarded before a node
// answers OWNER_UNAVAILABLE instead (placement views that disagree must
// not bounce a request around).
const MaxHops = 2

// HeaderEpoch carries, on a forwarded request, the forwarding node's ring
// epoch and, on every answer of a cluster node, the executing node's.
const HeaderEpoch = "X-Dura-Epoch"

// Router says where an object's requests run. The cluster implements it;
// without one every request runs here.
type Router interface {
	// Route returns local=true when this node serves the object now, or
	// the owner the Forwarder reaches, or an error wrapping
	// apierr.ErrOwnerUnavailable when no node can serve it safely now
	// (marked apierr.NotExecuted when waiting may help: the cluster is
	// forming, catching up, electing or handing the partition off).
	Route(class, name string) (owner Peer, local bool, err error)
	// Epoch is the ring epoch of this node's committed view.
	Epoch() uint64
	// Changed is closed at this node's next change of cluster state, so
	// a waiting request tries again at once.
	Changed() <-chan struct{}
}

// Call chains cross nodes in HeaderChain: the IDs of the objects waiting
// on this call, comma-separated, so a call back into one of them is
// refused (409) on whatever node it lands instead of deadlocking.
const HeaderChain = "X-Dura-Call-Chain"

// hopHeaders are per-connection headers a proxy must not pass on.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// routed wraps an object route: run it here, or stream it to the owner.
// A request whose owner is briefly unavailable (forming, catching up,
// electing, handing off, restarting) waits for it, up to RequestWait,
// holding no object; only the entry node waits.
func (s *Server) routed(h handlerFunc) handlerFunc {
	if s.cfg.Router == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		class, name := r.PathValue("class"), r.PathValue("name")
		body := newReplayBody(r.Body)
		r.Body = body
		var wt waiter
		defer wt.done(s)
		for {
			changed := s.cfg.Router.Changed()
			owner, local, err := s.cfg.Router.Route(class, name)
			if err == nil {
				if local {
					// The ring epoch the request runs at, read as it runs
					// (not when it arrived: it may have waited through a
					// handoff), so a client can tell two nodes serving one
					// object in one epoch from a move. A forwarded answer
					// carries the owner's.
					w.Header().Set(HeaderEpoch, strconv.FormatUint(s.cfg.Router.Epoch(), 10))
					err = h(w, r)
				} else {
					err = s.forward(w, r, owner)
				}
			}
			if err == nil || !retryable(err) || hops(r) > 0 || !body.rewind() {
				return err
			}
			if !wt.wait(s, r.Context(), changed) {
				return err
			}
		}
	}
}

// retryable: the request did not run and its owner is in a passing
// state (forming, catching up, electing, handing off) that it said so, or
// this node's state shows. An owner that cannot be reached at all is
// answered at once: it may be down for good, and its clients should not
// each hang for the whole wait.
func retryable(err error) bool {
	var de *DialError
	return apierr.IsNotExecuted(err) && errors.Is(err, apierr.ErrOwnerUnavailable) && !errors.As(err, &de)
}

// waiter is one request's wait for its owner.
type waiter struct {
	until    time.Time
	attempts int
	counted  bool
}

// wait pauses until the cluster changes or a short backoff passes, and
// reports whether the request may try again: false once RequestWait (or
// the request's own deadline) is over, or when too many requests wait.
func (wt *waiter) wait(s *Server, ctx context.Context, changed <-chan struct{}) bool {
	if !wt.counted {
		if s.waiting.Add(1) > int64(s.cfg.MaxWaiting) {
			s.waiting.Add(-1)
			return false
		}
		wt.counted = true
		s.waitingGauge.Inc()
		wt.until = time.Now().Add(s.cfg.RequestWait)
	}
	left := time.Until(wt.until)
	if left <= 0 {
		return false
	}
	d := min(5*time.Millisecond<<min(wt.attempts, 6), 250*time.Millisecond, left)
	wt.attempts++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-changed:
	case <-t.C:
	}
	return time.Now().Before(wt.until)
}

func (wt *waiter) done(s *Server) {
	if wt.counted {
		s.waiting.Add(-1)
		s.waitingGauge.Dec()
	}
}

// maxReplay is how much of a request body is kept so the request can be
// sent again after its owner refused it unrun.
const maxReplay = 1 << 20

// replayBody keeps what was read of a request body (up to maxReplay), so
// a request refused before it ran can be tried again.
type replayBody struct {
	rc       io.ReadCloser
	buf      []byte
	pos      int
	overflow bool
}

func newReplayBody(rc io.ReadCloser) *replayBody {
	if rc == nil {
		rc = http.NoBody
	}
	return &replayBody{rc: rc}
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.pos < len(b.buf) {
		n := copy(p, b.buf[b.pos:])
		b.pos += n
		return n, nil
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if !b.overflow && len(b.buf)+n <= maxReplay {
			b.buf = append(b.buf, p[:n]...)
			b.pos = len(b.buf)
		} else {
			b.overflow = true
		}
	}
	return n, err
}

// Close leaves the request's body to the server, which closes it.
func (b *replayBody) Close() error { return nil }

// buffered reads the rest of a body of n bytes (n at most maxReplay)
// into the replay buffer and returns it as an in-memory reader, which
// an HTTP client sends in one write with the request's headers (it sends
// the headers of a streamed body first, on their own). ok is false, with
// nothing read, when the body cannot be kept whole.
func (b *replayBody) buffered(n int64) (r io.Reader, ok bool) {
	if b.overflow || n < 0 || n > maxReplay || int64(len(b.buf)) > n {
		return nil, false
	}
	start := b.pos
	if int64(len(b.buf)) < n {
		b.buf = slices.Grow(b.buf, int(n)-len(b.buf))
		m, err := io.ReadFull(b.rc, b.buf[len(b.buf):n])
		b.buf = b.buf[:len(b.buf)+m]
		if err != nil {
			// Short: what came is kept for the forward to send, which
			// then fails on its length like the original.
			b.pos = len(b.buf)
			return bytes.NewReader(b.buf[start:]), true
		}
	}
	b.pos = len(b.buf)
	return bytes.NewReader(b.buf[start:]), true
}

// rewind starts the body over, if all that was read of it was kept.
func (b *replayBody) rewind() bool {
	if b.overflow {
		return false
	}
	b.pos = 0
	return true
}

// forward streams r to owner and its answer back, bodies unbuffered. An
// owner that cannot be reached, or that answers it did not run the
// request, comes back as an error (nothing written), so routed may wait
// and try again.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, owner Peer) error {
	n := hops(r) + 1
	if n > MaxHops {
		return fmt.Errorf("%w: request forwarded %d times without reaching the owner", apierr.ErrOwnerUnavailable, n-1)
	}
	body := io.Reader(r.Body)
	if rb, ok := r.Body.(*replayBody); ok {
		if b, ok := rb.buffered(r.ContentLength); ok {
			body = b
		}
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+owner.Addr+r.URL.RequestURI(), body)
	if err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrInternal, err)
	}
	out.ContentLength = r.ContentLength
	s.forwarded(out, r.Header, n, callerOf(r))
	resp, err := s.cfg.Forwarder.Do(out)
	if err != nil {
		s.log.Debug("forward failed", "owner", owner.Name, "err", err)
		return PeerError(owner, err)
	}
	defer resp.Body.Close()
	if unrun := refusedUnrun(resp); unrun != nil {
		return unrun
	}
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

// forwarded gives out, a request for the owner, the headers src had
// without the per-connection ones, plus the hop count, the caller this
// node authenticated and this node's ring epoch.
func (s *Server) forwarded(out *http.Request, src http.Header, hops int, caller string) {
	for k, v := range src {
		out.Header[k] = v
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Set(HeaderHops, strconv.Itoa(hops))
	out.Header.Set(HeaderCaller, caller)
	out.Header.Set(HeaderEpoch, strconv.FormatUint(s.cfg.Router.Epoch(), 10))
}

// refusedUnrun returns the owner's answer as an error when it refused the
// request without running it (503, not executed), else nil. The body is
// read only for such a 503, which is small.
func refusedUnrun(resp *http.Response) error {
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(HeaderError) == "" {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var body ErrorBody
	if json.Unmarshal(b, &body) != nil || !body.Error.NotExecuted {
		return nil
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message,
		Node: resp.Header.Get(HeaderNode), DidNotRun: true}
}

// copyBufs recycles the buffers forwarded bodies stream through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
