package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// stallTimeout is how long a seeding or handoff stream may go without a
// byte before it is given up and tried again: a connection whose other
// end went away while the network was cut never ends otherwise (its FIN
// or RST was dropped), and the partition would wait for it for minutes.
const stallTimeout = 30 * time.Second

var errStalled = errors.New("stream stalled: no data for " + stallTimeout.String())

// stallGuard cancels its context when a response stops arriving: from
// its start until the first byte, and between any two reads that bring
// data.
type stallGuard struct {
	r     io.Reader
	idle  time.Duration
	timer *time.Timer
}

// withStallGuard returns a context of parent that ends stallTimeout
// after the guard last saw data, and the guard.
func withStallGuard(parent context.Context) (context.Context, *stallGuard) {
	return guardStalls(parent, stallTimeout)
}

func guardStalls(parent context.Context, idle time.Duration) (context.Context, *stallGuard) {
	ctx, cancel := context.WithCancelCause(parent)
	g := &stallGuard{idle: idle}
	g.timer = time.AfterFunc(idle, func() { cancel(errStalled) })
	context.AfterFunc(parent, g.stop)
	return ctx, g
}

// wrap makes r's reads count as progress.
func (g *stallGuard) wrap(r io.Reader) io.Reader {
	g.r = r
	return g
}

func (g *stallGuard) Read(b []byte) (int, error) {
	n, err := g.r.Read(b)
	if n > 0 {
		g.timer.Reset(g.idle)
	}
	return n, err
}

// stop ends the guard (the request is done).
func (g *stallGuard) stop() { g.timer.Stop() }

// stalled names the stall as the cause of err when the guard of ctx gave
// up on the stream.
func stalled(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("%w (%v)", errStalled, err)
	}
	return err
}
