package cluster

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// ctxReader is a response body: it yields what the sender writes and
// ends with the request's context, as an HTTP body does.
type ctxReader struct {
	ctx  context.Context
	data chan []byte
}

func (r *ctxReader) Read(b []byte) (int, error) {
	select {
	case d, ok := <-r.data:
		if !ok {
			return 0, io.EOF
		}
		return copy(b, d), nil
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
}

func TestStallGuard(t *testing.T) {
	const idle = 500 * time.Millisecond
	for _, tc := range []struct {
		name   string
		gaps   []time.Duration // between the chunks sent, then the end
		stalls bool
	}{
		{"steady stream longer than the timeout", []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond, 50 * time.Millisecond}, false},
		{"stops midway", []time.Duration{10 * time.Millisecond, time.Hour}, true},
		{"no first byte", []time.Duration{time.Hour}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, g := guardStalls(context.Background(), idle)
			defer g.stop()
			r := &ctxReader{ctx: ctx, data: make(chan []byte)}
			go func() {
				for _, gap := range tc.gaps {
					select {
					case <-time.After(gap):
					case <-ctx.Done():
						return
					}
					select {
					case r.data <- []byte("x"):
					case <-ctx.Done():
						return
					}
				}
				close(r.data)
			}()
			_, err := io.ReadAll(g.wrap(r))
			err = stalled(ctx, err)
			if got := errors.Is(err, errStalled); got != tc.stalls {
				t.Fatalf("err %v: stalled %v, want %v", err, got, tc.stalls)
			}
		})
	}
}
