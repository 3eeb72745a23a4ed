package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
)

// Peer is another node as a node-to-node call reaches it: its name (for
// messages) and the address of its peer port.
type Peer struct {
	Name string
	Addr string
}

// DialError is a connection to another node that could not be made: the
// request never left this node.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// NewPeerTransport is the HTTP transport of node-to-node calls; dial opens
// a connection to another node's peer port. Failed dials come back as
// *DialError, so callers can tell a request that never left from one
// whose answer was lost.
func NewPeerTransport(dial func(ctx context.Context, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, err := dial(ctx, addr)
			if err != nil {
				return nil, &DialError{Addr: addr, Err: err}
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}
}

// PeerError turns a transport error of a call to peer into the API's
// error: OWNER_UNAVAILABLE naming the node, marked not executed when the
// connection was never made. The message says nothing internal (no
// address or URL); the cause stays in the chain for logs.
func PeerError(peer Peer, err error) error {
	var de *DialError
	if errors.As(err, &de) {
		return apierr.NotExecuted(&peerErr{msg: fmt.Sprintf("node %s is unreachable", peer.Name), cause: err})
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer from node %s in time", apierr.ErrTimeout, peer.Name)
	}
	return &peerErr{msg: fmt.Sprintf("node %s did not answer (the connection broke after the request was sent)", peer.Name), cause: err}
}

// peerErr is OWNER_UNAVAILABLE with a message for clients and the
// transport error behind it for logs.
type peerErr struct {
	msg   string
	cause error
}

func (e *peerErr) Error() string { return e.msg }
func (e *peerErr) Unwrap() []error {
	return []error{apierr.ErrOwnerUnavailable, e.cause}
}

// PeerClient makes node-to-node calls (to the leader, for handoff, for
// listings) and decodes their answers like the API's own: an error
// answer comes back as *APIError with the other node's code, status and
// message, so a CONSTRAINT on the leader is a CONSTRAINT here. It is safe
// for concurrent use.
type PeerClient struct {
	hc    *http.Client
	token string
}

// NewPeerClient calls other nodes through hc (built on NewPeerTransport),
// sending the first of the comma-separated admin tokens: a plain peer port
// checks it as the client port does.
func NewPeerClient(hc *http.Client, adminToken string) *PeerClient {
	return &PeerClient{hc: hc, token: PeerToken(adminToken)}
}

// PeerToken is the token a node presents to other nodes: the first of
// its comma-separated admin tokens.
func PeerToken(adminToken string) string {
	token, _, _ := strings.Cut(adminToken, ",")
	return token
}

// Authorize adds this node's credentials to a node-to-node request.
func (p *PeerClient) Authorize(req *http.Request) {
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
}

// Do sends req to peer and returns the answer if it is a success; the
// caller closes its body.
func (p *PeerClient) Do(peer Peer, req *http.Request) (*http.Response, error) {
	p.Authorize(req)
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, PeerError(peer, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// Call sends body (nil for none) with method to path on peer and returns
// the whole answer.
func (p *PeerClient) Call(ctx context.Context, peer Peer, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+peer.Addr+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrInternal, err)
	}
	resp, err := p.Do(peer, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, PeerError(peer, err)
	}
	return b, nil
}
