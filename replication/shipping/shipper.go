package shipping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Transport delivers a batch to a peer and returns its acknowledgements.
type Transport interface {
	Send(ctx context.Context, peer string, batch []byte) ([]Ack, error)
}

// Config configures a Shipper.
type Config struct {
	Transport Transport
	// Timeout is how long a replica may take to acknowledge a record
	// before it counts as lagging; 2 s by default.
	Timeout time.Duration
	// MaxBatchBytes bounds the entries of one batch; 4 MiB by default.
	MaxBatchBytes int
	Logger        *slog.Logger
}

// ErrLagging is what a shipment to a lagging replica ends with: it did
// not acknowledge in time, refused the partition's stream, or its stream
// broke before (a gap) and has not been resumed.
var ErrLagging = errors.New("replica lagging")

// Shipper sends records to replicas, one sender per peer, each with one
// batch in flight: what queues while a batch is out goes in the next.
// All methods are safe to call concurrently.
type Shipper struct {
	cfg Config

	mu     sync.Mutex
	peers  map[string]*peerQueue
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
	ctx    context.Context // cancelled by Close: ends sends in flight
	cancel context.CancelFunc
}

// NewShipper makes a shipper; Close stops its senders.
func NewShipper(cfg Config) *Shipper {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Shipper{cfg: cfg, peers: map[string]*peerQueue{}, stop: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// peerQueue is one replica's sender.
type peerQueue struct {
	name string
	wake chan struct{}

	mu       sync.Mutex
	queue    []*shipment
	inflight []*shipment  // the batch being delivered
	broken   map[int]bool // partitions whose stream to this peer is over
	// gen counts each partition's streams to this peer (Resume starts a
	// new one): a late failure of an older stream's batch leaves the new
	// one alone.
	gen map[int]uint64
}

// shipment is one record on its way to one peer.
type shipment struct {
	at   time.Time // when it was queued
	rec  Record
	gen  uint64
	done chan struct{}
	err  error
}

func (sh *shipment) finish(err error) {
	sh.err = err
	close(sh.done)
}

// Pending is a shipped record: Wait says who has it.
type Pending struct {
	s        *Shipper
	deadline time.Time
	awaited  map[string]*shipment
}

// Ship queues rec for every peer in to and returns what to wait for:
// the peers in await (a subset of to) are the ones whose acknowledgement
// the write needs.
func (s *Shipper) Ship(rec Record, to, await []string) *Pending {
	p := &Pending{s: s, deadline: time.Now().Add(s.cfg.Timeout), awaited: map[string]*shipment{}}
	for _, name := range to {
		sh := &shipment{at: time.Now(), rec: rec, done: make(chan struct{})}
		if q := s.peer(name); q == nil {
			sh.finish(errors.New("shipper closed"))
		} else {
			q.push(sh)
		}
		p.awaited[name] = sh
	}
	for name := range p.awaited {
		if !slices.Contains(await, name) {
			delete(p.awaited, name)
		}
	}
	return p
}

// Wait returns the awaited peers that did not acknowledge by the
// deadline or refused; the others have the record durable. A peer that
// timed out is cut off for the record's partition (see Resume).
func (p *Pending) Wait(ctx context.Context) []string {
	var lagging []string
	timer := time.NewTimer(time.Until(p.deadline))
	defer timer.Stop()
	expired := false
	for name, sh := range p.awaited {
		if !expired {
			select {
			case <-sh.done:
			case <-timer.C:
				expired = true
			case <-ctx.Done():
				expired = true
			}
		}
		select {
		case <-sh.done:
			if sh.err == nil {
				continue
			}
		default:
			p.s.cutOff(name, sh)
		}
		lagging = append(lagging, name)
	}
	return lagging
}

// Resume starts partition's stream to peer again (it is re-seeded from
// the next record queued).
func (s *Shipper) Resume(peer string, partition int) {
	if q := s.peer(peer); q != nil {
		q.mu.Lock()
		delete(q.broken, partition)
		q.gen[partition]++
		q.mu.Unlock()
	}
}

// cutOff ends the stream to peer that sh belongs to: records still
// queued for its partition and later ones fail at once until Resume.
func (s *Shipper) cutOff(peer string, sh *shipment) {
	if q := s.peer(peer); q != nil {
		q.mu.Lock()
		q.breakLocked(sh)
		q.mu.Unlock()
	}
}

// breakLocked ends sh's stream if it is still the current one (q.mu held).
func (q *peerQueue) breakLocked(sh *shipment) {
	if q.gen[sh.rec.Partition] == sh.gen {
		q.broken[sh.rec.Partition] = true
	}
}

// Close stops the senders; queued shipments fail.
func (s *Shipper) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Shipper) peer(name string) *peerQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	q := s.peers[name]
	if q == nil {
		q = &peerQueue{name: name, wake: make(chan struct{}, 1), broken: map[int]bool{}, gen: map[int]uint64{}}
		s.peers[name] = q
		s.wg.Add(1)
		go s.send(q)
	}
	return q
}

func (q *peerQueue) push(sh *shipment) {
	q.mu.Lock()
	sh.gen = q.gen[sh.rec.Partition]
	if q.broken[sh.rec.Partition] {
		q.mu.Unlock()
		sh.finish(ErrLagging)
		return
	}
	q.queue = append(q.queue, sh)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes the next batch from the queue, failing shipments of
// partitions cut off meanwhile.
func (q *peerQueue) take(maxBytes int) []*shipment {
	q.mu.Lock()
	defer q.mu.Unlock()
	var batch []*shipment
	size, n := 0, 0
	for ; n < len(q.queue) && (size == 0 || size+len(q.queue[n].rec.Entry) <= maxBytes); n++ {
		sh := q.queue[n]
		if q.broken[sh.rec.Partition] || sh.gen != q.gen[sh.rec.Partition] {
			sh.finish(ErrLagging)
			continue
		}
		batch = append(batch, sh)
		size += len(sh.rec.Entry)
	}
	q.queue = append(q.queue[:0:0], q.queue[n:]...)
	q.inflight = batch
	return batch
}

// Lag is how far a replica is behind: records shipped to it and not yet
// acknowledged, and how long the oldest has waited.
type Lag struct {
	Records int
	Oldest  time.Duration
}

// Lag reports each peer's lag.
func (s *Shipper) Lag() map[string]Lag {
	s.mu.Lock()
	peers := make([]*peerQueue, 0, len(s.peers))
	for _, q := range s.peers {
		peers = append(peers, q)
	}
	s.mu.Unlock()
	out := make(map[string]Lag, len(peers))
	now := time.Now()
	for _, q := range peers {
		q.mu.Lock()
		l := Lag{Records: len(q.inflight) + len(q.queue)}
		for _, sh := range append(q.inflight[:len(q.inflight):len(q.inflight)], q.queue...) {
			l.Oldest = max(l.Oldest, now.Sub(sh.at))
		}
		q.mu.Unlock()
		out[q.name] = l
	}
	return out
}

// send is a peer's sender loop.
func (s *Shipper) send(q *peerQueue) {
	defer s.wg.Done()
	for {
		batch := q.take(s.cfg.MaxBatchBytes)
		if len(batch) == 0 {
			select {
			case <-q.wake:
				continue
			case <-s.stop:
				q.mu.Lock()
				for _, sh := range q.queue {
					sh.finish(errors.New("shipper closed"))
				}
				q.queue = nil
				q.mu.Unlock()
				return
			}
		}
		s.deliver(q, batch)
	}
}

// deliver sends one batch and settles its shipments.
func (s *Shipper) deliver(q *peerQueue, batch []*shipment) {
	recs := make([]Record, len(batch))
	for i, sh := range batch {
		recs[i] = sh.rec
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	acks, err := s.cfg.Transport.Send(ctx, q.name, EncodeBatch(recs))
	cancel()
	byPartition := map[int]Ack{}
	for _, a := range acks {
		byPartition[a.Partition] = a
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = nil
	for _, sh := range batch {
		a, ok := byPartition[sh.rec.Partition]
		switch {
		case err != nil:
			// Whatever part of the batch arrived, the stream has a hole
			// for the replica now: it must be seeded again.
			q.breakLocked(sh)
			sh.finish(fmt.Errorf("%w: %s: %v", ErrLagging, q.name, err))
		case !ok || a.Refused != "" || a.Seq < sh.rec.Seq:
			q.breakLocked(sh)
			sh.finish(fmt.Errorf("%w: %s refused partition %d: %s", ErrLagging, q.name, sh.rec.Partition, a.Refused))
		default:
			sh.finish(nil)
		}
	}
	if err != nil {
		s.cfg.Logger.Debug("shipping to a replica failed", "peer", q.name, "records", len(batch), "err", err)
	}
}
