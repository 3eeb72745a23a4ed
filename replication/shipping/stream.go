package shipping

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A stream carries one primary node's batches to one replica node over a
// long-lived connection: the sender's hello, the replica's answer to it,
// then each batch and its acknowledgements, one at a time (the Shipper
// has one batch in flight per peer). A frame is its length (4 bytes,
// little-endian, counting what follows), a type byte and the payload; a
// batch costs one write each way and no HTTP.
const (
	frameHello    byte = 'h' // sender's hello: whatever the receiver checks
	frameWelcome  byte = 'w' // the receiver took the hello
	frameBatch    byte = 'b' // EncodeBatch's bytes
	frameAcks     byte = 'a' // encodeAcks' bytes
	frameRefusal  byte = 'e' // the batch or hello was refused: a message
	maxFrameBytes      = 256 << 20
	helloTimeout       = 10 * time.Second
)

// ErrNoStream: the peer does not take shipping streams (it closed the
// connection before answering the hello: an older version), so batches
// go to it another way.
var ErrNoStream = errors.New("peer takes no shipping stream")

// StreamTransport sends batches over one connection per peer, dialled
// when first needed and again after a failure. Fallback, if set, carries
// the batches of a peer that takes no streams. It is safe for concurrent
// use.
type StreamTransport struct {
	// Dial opens a connection to peer's shipping listener.
	Dial func(ctx context.Context, peer string) (net.Conn, error)
	// Hello is the first frame's payload on every connection (who sends,
	// and credentials when the connection itself does not prove them).
	Hello    []byte
	Fallback Transport

	mu     sync.Mutex
	peers  map[string]*streamPeer
	closed bool
}

type streamPeer struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// Send delivers batch to peer and returns its acknowledgements.
func (t *StreamTransport) Send(ctx context.Context, peer string, batch []byte) ([]Ack, error) {
	sp, err := t.peer(peer)
	if err != nil {
		return nil, err
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.conn == nil {
		if err := t.connect(ctx, peer, sp); err != nil {
			if errors.Is(err, ErrNoStream) && t.Fallback != nil {
				return t.Fallback.Send(ctx, peer, batch)
			}
			return nil, err
		}
	}
	stop := watch(ctx, sp.conn)
	acks, err := exchange(sp, batch)
	stop()
	if err = contextErr(ctx, err); err != nil {
		var refused *refusal
		if !errors.As(err, &refused) {
			sp.conn.Close()
			sp.conn, sp.r = nil, nil
		}
		return nil, err
	}
	return acks, nil
}

// Close closes the connections; later sends fail.
func (t *StreamTransport) Close() {
	t.mu.Lock()
	t.closed = true
	peers := t.peers
	t.peers = nil
	t.mu.Unlock()
	for _, sp := range peers {
		sp.mu.Lock()
		if sp.conn != nil {
			sp.conn.Close()
			sp.conn = nil
		}
		sp.mu.Unlock()
	}
}

func (t *StreamTransport) peer(name string) (*streamPeer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("shipping stream closed")
	}
	if t.peers == nil {
		t.peers = map[string]*streamPeer{}
	}
	sp := t.peers[name]
	if sp == nil {
		sp = &streamPeer{}
		t.peers[name] = sp
	}
	return sp, nil
}

// connect dials peer and exchanges hellos (sp.mu held).
func (t *StreamTransport) connect(ctx context.Context, peer string, sp *streamPeer) error {
	conn, err := t.Dial(ctx, peer)
	if err != nil {
		return err
	}
	stop := watch(ctx, conn)
	r := bufio.NewReader(conn)
	err = writeFrame(conn, frameHello, t.Hello)
	var typ byte
	var msg []byte
	if err == nil {
		typ, msg, err = readFrame(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: %s closed the connection after the hello", ErrNoStream, peer)
		}
	}
	if err == nil && typ != frameWelcome {
		err = fmt.Errorf("shipping stream to %s: hello refused: %s", peer, msg)
	}
	stop()
	if err = contextErr(ctx, err); err != nil {
		conn.Close()
		return err
	}
	sp.conn, sp.r = conn, r
	return nil
}

// exchange sends one batch and reads its answer.
func exchange(sp *streamPeer, batch []byte) ([]Ack, error) {
	if err := writeFrame(sp.conn, frameBatch, batch); err != nil {
		return nil, err
	}
	typ, b, err := readFrame(sp.r)
	if err != nil {
		return nil, err
	}
	switch typ {
	case frameAcks:
		return decodeAcks(b)
	case frameRefusal:
		return nil, &refusal{string(b)}
	default:
		return nil, fmt.Errorf("shipping stream: unexpected frame %q", typ)
	}
}

// refusal is a batch the replica refused as a whole; the stream goes on.
type refusal struct{ msg string }

func (r *refusal) Error() string { return "replica refused the batch: " + r.msg }

// watch makes conn's reads and writes fail once ctx is done, until stop.
func watch(ctx context.Context, conn net.Conn) (stop func()) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	cancel := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		cancel()
		conn.SetDeadline(time.Time{})
	}
}

// contextErr is err, said to be ctx's end when ctx ended (or its deadline,
// which the connection shares, passed) meanwhile.
func contextErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// ServeStream answers one connection's hello and then its batches until
// it closes. hello checks the sender's hello and says who sent it;
// receive takes a batch (Receiver.Receive).
func ServeStream(conn net.Conn, hello func([]byte) (string, error), receive func(from string, batch []byte) ([]Ack, error)) error {
	defer conn.Close()
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(helloTimeout))
	typ, b, err := readFrame(r)
	if err != nil {
		return err
	}
	if typ != frameHello {
		return fmt.Errorf("shipping stream: expected a hello, got frame %q", typ)
	}
	from, err := hello(b)
	if err != nil {
		writeFrame(conn, frameRefusal, []byte(err.Error()))
		return err
	}
	if err := writeFrame(conn, frameWelcome, nil); err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	for {
		typ, b, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if typ != frameBatch {
			return fmt.Errorf("shipping stream: expected a batch, got frame %q", typ)
		}
		acks, err := receive(from, b)
		if err != nil {
			err = writeFrame(conn, frameRefusal, []byte(err.Error()))
		} else {
			err = writeFrame(conn, frameAcks, encodeAcks(acks))
		}
		if err != nil {
			return err
		}
	}
}

// writeFrame writes one frame with one system call.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var h [5]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(1+len(payload)))
	h[4] = typ
	bufs := net.Buffers{h[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// readFrame reads one frame; its payload is the caller's.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n == 0 || n > maxFrameBytes {
		return 0, nil, fmt.Errorf("shipping stream: frame of %d bytes", n)
	}
	b := make([]byte, n-1)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[4], b, nil
}

// encodeAcks lays acks out: count, then per ack partition, seq and the
// refusal reason (length byte and text).
func encodeAcks(acks []Ack) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(acks)))
	for _, a := range acks {
		b = binary.LittleEndian.AppendUint32(b, uint32(a.Partition))
		b = binary.LittleEndian.AppendUint64(b, a.Seq)
		reason := a.Refused[:min(len(a.Refused), 255)]
		b = append(b, byte(len(reason)))
		b = append(b, reason...)
	}
	return b
}

var errBadAcks = errors.New("shipping stream: malformed acknowledgements")

func decodeAcks(b []byte) ([]Ack, error) {
	if len(b) < 4 {
		return nil, errBadAcks
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > len(b)/13 {
		return nil, errBadAcks
	}
	acks := make([]Ack, 0, n)
	for range n {
		if len(b) < 13 || len(b) < 13+int(b[12]) {
			return nil, errBadAcks
		}
		a := Ack{Partition: int(binary.LittleEndian.Uint32(b)), Seq: binary.LittleEndian.Uint64(b[4:])}
		a.Refused = string(b[13 : 13+int(b[12])])
		acks = append(acks, a)
		b = b[13+int(b[12]):]
	}
	if len(b) != 0 {
		return nil, errBadAcks
	}
	return acks, nil
}
