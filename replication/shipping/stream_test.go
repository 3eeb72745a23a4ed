package shipping

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// streamServer serves ServeStream on a loopback listener; serve, if set,
// replaces it for each connection.
type streamServer struct {
	ln      net.Listener
	accepts atomic.Int32
	hello   func([]byte) (string, error)
	receive func(string, []byte) ([]Ack, error)
	serve   func(net.Conn)
}

func startStreamServer(t *testing.T, s *streamServer) *StreamTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	t.Cleanup(func() { ln.Close() })
	if s.hello == nil {
		s.hello = func(b []byte) (string, error) { return string(b), nil }
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			if s.serve != nil {
				go s.serve(c)
			} else {
				go ServeStream(c, s.hello, s.receive)
			}
		}
	}()
	tr := &StreamTransport{Hello: []byte("n1"), Dial: func(ctx context.Context, peer string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}}
	t.Cleanup(tr.Close)
	return tr
}

// ackAll acknowledges every partition of a batch at its last record.
func ackAll(from string, batch []byte) ([]Ack, error) {
	recs, err := DecodeBatch(batch)
	if err != nil {
		return nil, err
	}
	var acks []Ack
	for _, r := range recs {
		acks = append(acks, Ack{Partition: r.Partition, Seq: r.Seq})
	}
	if from != "n1" {
		acks[0].Refused = "from " + from
	}
	return acks, nil
}

func send(tr Transport, seq uint64) ([]Ack, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return tr.Send(ctx, "r1", EncodeBatch([]Record{{Partition: 4, Seq: seq, Entry: []byte("e")}}))
}

func TestStreamCarriesBatchesOnOneConnection(t *testing.T) {
	s := &streamServer{receive: ackAll}
	tr := startStreamServer(t, s)
	for seq := uint64(1); seq <= 5; seq++ {
		acks, err := send(tr, seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(acks) != 1 || acks[0] != (Ack{Partition: 4, Seq: seq}) {
			t.Fatalf("acks %+v for record %d", acks, seq)
		}
	}
	if n := s.accepts.Load(); n != 1 {
		t.Fatalf("%d connections for 5 batches, want 1", n)
	}
}

func TestStreamRefusals(t *testing.T) {
	t.Run("hello", func(t *testing.T) {
		s := &streamServer{receive: ackAll, hello: func([]byte) (string, error) { return "", errors.New("bad token") }}
		tr := startStreamServer(t, s)
		tr.Fallback = failingTransport{}
		if _, err := send(tr, 1); err == nil || !strings.Contains(err.Error(), "bad token") {
			t.Fatalf("err %v, want the hello's refusal", err)
		}
	})
	t.Run("batch", func(t *testing.T) {
		calls := 0
		s := &streamServer{receive: func(from string, b []byte) ([]Ack, error) {
			if calls++; calls == 1 {
				return nil, errors.New("malformed batch")
			}
			return ackAll(from, b)
		}}
		tr := startStreamServer(t, s)
		if _, err := send(tr, 1); err == nil || !strings.Contains(err.Error(), "malformed batch") {
			t.Fatalf("err %v, want the batch's refusal", err)
		}
		if _, err := send(tr, 2); err != nil {
			t.Fatal(err)
		}
		if n := s.accepts.Load(); n != 1 {
			t.Fatalf("%d connections: a refused batch should not end the stream", n)
		}
	})
}

type failingTransport struct{}

func (failingTransport) Send(context.Context, string, []byte) ([]Ack, error) {
	return nil, errors.New("fallback used")
}

type recordingTransport struct{ sent atomic.Int32 }

func (f *recordingTransport) Send(_ context.Context, _ string, b []byte) ([]Ack, error) {
	f.sent.Add(1)
	return ackAll("n1", b)
}

// A peer that closes the connection after the hello takes no streams
// (an older version): its batches go through the fallback.
func TestStreamFallsBackForPeersWithoutStreams(t *testing.T) {
	s := &streamServer{serve: func(c net.Conn) {
		readFrame(bufio.NewReader(c))
		c.Close()
	}}
	tr := startStreamServer(t, s)
	fb := &recordingTransport{}
	tr.Fallback = fb
	if acks, err := send(tr, 1); err != nil || len(acks) != 1 || acks[0].Seq != 1 {
		t.Fatalf("acks %+v, err %v", acks, err)
	}
	if fb.sent.Load() != 1 {
		t.Fatal("the fallback was not used")
	}
}

// A broken connection fails the batch in flight; the next one dials
// again.
func TestStreamRedialsAfterABreak(t *testing.T) {
	var served atomic.Int32
	s := &streamServer{}
	s.serve = func(c net.Conn) {
		if served.Add(1) == 1 {
			n := 0
			ServeStream(c, s.hello, func(from string, b []byte) ([]Ack, error) {
				if n++; n == 2 {
					c.Close()
				}
				return ackAll(from, b)
			})
			return
		}
		ServeStream(c, s.hello, ackAll)
	}
	tr := startStreamServer(t, s)
	if _, err := send(tr, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := send(tr, 2); err == nil {
		t.Fatal("a batch whose connection broke was acknowledged")
	}
	if _, err := send(tr, 3); err != nil {
		t.Fatalf("after the break: %v", err)
	}
	if n := s.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// A replica that never answers: the send ends with its context.
func TestStreamSendEndsWithItsContext(t *testing.T) {
	s := &streamServer{receive: func(string, []byte) ([]Ack, error) {
		time.Sleep(time.Hour)
		return nil, nil
	}}
	tr := startStreamServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tr.Send(ctx, "r1", EncodeBatch([]Record{{Partition: 1, Seq: 1, Entry: []byte("e")}}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestAcksCodec(t *testing.T) {
	acks := []Ack{{Partition: 1, Seq: 9}, {Partition: 300, Seq: 1 << 40, Refused: RefusedGap}}
	b := encodeAcks(acks)
	got, err := decodeAcks(b)
	if err != nil || len(got) != 2 || got[0] != acks[0] || got[1] != acks[1] {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(b, 0), {255, 255, 255, 255}} {
		if _, err := decodeAcks(bad); err == nil {
			t.Errorf("malformed acks (%d bytes) decoded", len(bad))
		}
	}
}
