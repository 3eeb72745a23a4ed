// Package peer carries node-to-node traffic on one TCP port: the Raft
// transport, the internal HTTP API (forwarding, handoff streams,
// commands passed to the leader) and the streams of shipped records. With a cluster secret or certificates
// every connection is TLS 1.3 with both ends authenticated; without, it
// is plain TCP, which the command line allows only on loopback or with
// --insecure.
//
// A dialer opens a connection, completes the TLS handshake and sends one
// byte naming what the connection carries; the port hands it to the Raft,
// HTTP or shipping listener accordingly.
package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// What a connection carries, sent as its first byte.
const (
	KindRaft byte = 'R'
	KindHTTP byte = 'H'
	// KindShip carries a primary's records to a replica (one connection
	// per pair of nodes, replication/shipping's stream).
	KindShip byte = 'S'
)

// handshakeTimeout bounds a new connection's TLS handshake and kind byte.
const handshakeTimeout = 10 * time.Second

// Dialer opens peer connections.
type Dialer struct {
	// TLS, if set, secures every connection (a client configuration made
	// by FromSecrets or FromFiles); nil dials plain TCP.
	TLS *tls.Config
}

// Dial connects to a peer port at addr for traffic of the given kind.
func (d Dialer) Dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if deadline, ok := ctx.Deadline(); ok {
		raw.SetDeadline(deadline)
	} else {
		raw.SetDeadline(time.Now().Add(handshakeTimeout))
	}
	if d.TLS != nil {
		tc := tls.Client(raw, d.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("peer %s: TLS handshake: %w", addr, err)
		}
		conn = tc
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("peer %s: %w", addr, err)
	}
	raw.SetDeadline(time.Time{})
	return conn, nil
}

// Port is a listening peer port. Close it once Raft and the HTTP server
// using its listeners have stopped.
type Port struct {
	ln        net.Listener
	tls       *tls.Config
	advertise net.Addr
	log       *slog.Logger
	raft      *subListener
	http      *subListener
	ship      *subListener
	closed    chan struct{}
	wg        sync.WaitGroup
}

// Listen opens a peer port on bind. advertise is the address other nodes
// dial ("" means the bound one). tlsConf, if set, is a server
// configuration (FromSecrets, FromFiles) every connection must satisfy.
func Listen(bind, advertise string, tlsConf *tls.Config, log *slog.Logger) (*Port, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("peer port: %w", err)
	}
	var adv net.Addr = ln.Addr()
	if advertise != "" {
		// Kept as given: a DNS name outlives a container's address.
		if _, _, err := net.SplitHostPort(advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("peer port: advertise address: %w", err)
		}
		adv = tcpName(advertise)
	}
	p := &Port{ln: ln, tls: tlsConf, advertise: adv, log: log, closed: make(chan struct{})}
	p.raft = newSubListener(adv)
	p.http = newSubListener(adv)
	p.ship = newSubListener(adv)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address other nodes dial.
func (p *Port) Addr() net.Addr { return p.advertise }

// Secure reports whether every connection is TLS with an authenticated peer.
func (p *Port) Secure() bool { return p.tls != nil }

// RaftListener yields the connections carrying Raft.
func (p *Port) RaftListener() net.Listener { return p.raft }

// HTTPListener yields the connections carrying the internal HTTP API.
func (p *Port) HTTPListener() net.Listener { return p.http }

// ShipListener yields the connections carrying shipped records.
func (p *Port) ShipListener() net.Listener { return p.ship }

// Close stops accepting and closes both listeners.
func (p *Port) Close() error {
	select {
	case <-p.closed:
		return nil
	default:
	}
	close(p.closed)
	err := p.ln.Close()
	p.wg.Wait()
	p.raft.Close()
	p.http.Close()
	p.ship.Close()
	return err
}

func (p *Port) accept() {
	defer p.wg.Done()
	for {
		raw, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.log.Warn("peer port: accept failed", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		go p.admit(raw)
	}
}

// admit completes a connection's handshake and passes it on by kind.
func (p *Port) admit(raw net.Conn) {
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	conn := raw
	if p.tls != nil {
		tc := tls.Server(raw, p.tls)
		if err := tc.Handshake(); err != nil {
			p.log.Warn("peer connection refused", "remote", raw.RemoteAddr().String(), "err", err)
			raw.Close()
			return
		}
		conn = tc
	}
	var kind [1]byte
	if _, err := conn.Read(kind[:]); err != nil {
		conn.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	var to *subListener
	switch kind[0] {
	case KindRaft:
		to = p.raft
	case KindHTTP:
		to = p.http
	case KindShip:
		to = p.ship
	default:
		p.log.Warn("peer connection refused: unknown kind", "remote", raw.RemoteAddr().String(), "kind", kind[0])
		conn.Close()
		return
	}
	if !to.deliver(conn) {
		conn.Close()
	}
}

// subListener is a net.Listener fed by the port.
type subListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newSubListener(addr net.Addr) *subListener {
	return &subListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *subListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *subListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *subListener) Addr() net.Addr { return l.addr }

// tcpName is an advertised address as given (host name or IP, and port).
type tcpName string

func (a tcpName) Network() string { return "tcp" }
func (a tcpName) String() string  { return string(a) }
