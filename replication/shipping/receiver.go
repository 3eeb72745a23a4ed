package shipping

import (
	"fmt"
	"sync"
)

// ReceiverConfig connects a Receiver to its node.
type ReceiverConfig struct {
	// Log makes entries durable in order (the node log) before they are
	// acknowledged.
	Log func(entries [][]byte) error
	// Apply applies a partition's entries, in order, once durable.
	Apply func(partition int, entries [][]byte)
	// Check says whether from may ship partition's records under version:
	// nil, or why not (from is not the primary this node knows).
	Check func(from string, partition int, version uint64) error
	// MaxHeldBytes bounds what a partition's stream holds while its
	// replica is seeded (256 MiB by default); past it the stream is
	// refused and the seeding starts over.
	MaxHeldBytes int
}

// Receiver takes the records shipped to this node. A partition's stream
// is accepted only after Expect: its first record starts it, and each
// later one must follow the last without a gap (a record already taken
// is acknowledged again, not applied twice). All methods are safe to call
// concurrently.
type Receiver struct {
	cfg ReceiverConfig

	mu       sync.Mutex
	streams  map[int]*stream
	inflight map[int]int // batches of a partition between admission and apply
	settled  *sync.Cond  // signalled as inflight drops
}

// stream is the state of one partition's records on this node.
type stream struct {
	from    string
	run     uint64 // the primary's stream (Record.Run), once started
	seq     uint64 // last record taken
	version uint64 // the highest Record.Version taken
	expect  bool   // the next record from from starts the stream
	busy    bool   // a batch of it is being logged
	// hold keeps records (acknowledged, not logged or applied) until
	// Release: the replica is being seeded.
	hold      bool
	held      [][]byte
	heldBytes int
}

// RefusedOverflow: the records held during a seeding outgrew
// ReceiverConfig.MaxHeldBytes.
const RefusedOverflow = "overflow"

// NewReceiver makes a receiver that follows no partition yet.
func NewReceiver(cfg ReceiverConfig) *Receiver {
	if cfg.MaxHeldBytes <= 0 {
		cfg.MaxHeldBytes = 256 << 20
	}
	r := &Receiver{cfg: cfg, streams: map[int]*stream{}, inflight: map[int]int{}}
	r.settled = sync.NewCond(&r.mu)
	return r
}

// Expect makes the next record of partition from from the start of its
// stream here, and holds the records until Release: the replica is being
// seeded (the primary sends the records after its snapshot began).
func (r *Receiver) Expect(partition int, from string) {
	r.mu.Lock()
	r.streams[partition] = &stream{from: from, expect: true, hold: true}
	r.mu.Unlock()
}

// Release hands the records held for partition to install: first those
// held so far, with first set (install them with the snapshot they
// follow), then those held meanwhile, until none came; from then on its
// stream is logged and applied as it comes. If install fails or the
// stream ended, the stream stops and Release says why.
func (r *Receiver) Release(partition int, install func(held [][]byte, first bool) error) error {
	for first := true; ; first = false {
		r.mu.Lock()
		st := r.streams[partition]
		if st == nil || !st.hold {
			r.mu.Unlock()
			return fmt.Errorf("partition %d: its stream ended while the replica was seeded", partition)
		}
		held := st.held
		st.held, st.heldBytes = nil, 0
		if !first && len(held) == 0 {
			st.hold = false
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		if err := install(held, first); err != nil {
			r.Stop(partition)
			return err
		}
	}
}

// Stop ends partition's stream here: its records are refused until the
// next Expect. It returns once no batch of it is being logged or applied.
func (r *Receiver) Stop(partition int) {
	r.mu.Lock()
	delete(r.streams, partition)
	for r.inflight[partition] > 0 {
		r.settled.Wait()
	}
	r.mu.Unlock()
}

// Position is the last record of partition taken here, and whether its
// stream is followed.
func (r *Receiver) Position(partition int) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.streams[partition]
	if st == nil || st.expect {
		return 0, st != nil
	}
	return st.seq, true
}

// Receive takes a batch from a primary and answers, per partition, how
// far its records are durable here, or why they were refused.
func (r *Receiver) Receive(from string, batch []byte) ([]Ack, error) {
	recs, err := DecodeBatch(batch)
	if err != nil {
		return nil, err
	}
	order, parts, entries := r.admitBatch(from, recs)
	logErr := error(nil)
	if len(entries) > 0 {
		logErr = r.cfg.Log(entries)
	}
	r.logged(order, parts, logErr)
	acks := make([]Ack, 0, len(order))
	for _, p := range order {
		pt := parts[p]
		if len(pt.entries) == 0 {
			acks = append(acks, pt.ack)
			continue
		}
		if pt.ack.Refused == "" {
			r.cfg.Apply(p, pt.entries)
		}
		r.mu.Lock()
		if r.inflight[p]--; r.inflight[p] == 0 {
			delete(r.inflight, p)
		}
		r.settled.Broadcast()
		r.mu.Unlock()
		acks = append(acks, pt.ack)
	}
	return acks, nil
}

// batchPart is one partition's share of a batch being received.
type batchPart struct {
	ack     Ack
	entries [][]byte // to log and apply
	last    uint64   // its last record taken
}

// admitBatch checks a batch's records against their streams, holds those
// of partitions being seeded, and returns the partitions in batch order
// with the entries to log (marked in flight).
func (r *Receiver) admitBatch(from string, recs []Record) ([]int, map[int]*batchPart, [][]byte) {
	var order []int
	parts := map[int]*batchPart{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		pt := parts[rec.Partition]
		if pt == nil {
			pt = &batchPart{ack: Ack{Partition: rec.Partition}}
			parts[rec.Partition] = pt
			order = append(order, rec.Partition)
		}
		if pt.ack.Refused != "" {
			continue
		}
		if reason := r.admit(from, rec, pt.last); reason != "" {
			pt.ack = Ack{Partition: rec.Partition, Refused: reason}
			pt.entries = nil
			if reason != RefusedNotFollow {
				delete(r.streams, rec.Partition)
			}
			continue
		}
		st := r.streams[rec.Partition]
		if rec.Seq <= st.seq && !st.expect {
			pt.ack.Seq = max(pt.ack.Seq, rec.Seq) // taken before: a resend
			continue
		}
		pt.last = rec.Seq
		if st.hold {
			if st.heldBytes += len(rec.Entry); st.heldBytes > r.cfg.MaxHeldBytes {
				pt.ack.Refused = RefusedOverflow
				delete(r.streams, rec.Partition)
				continue
			}
			st.held = append(st.held, append([]byte(nil), rec.Entry...))
			st.expect, st.seq = false, rec.Seq
			pt.ack.Seq = rec.Seq
			continue
		}
		pt.entries = append(pt.entries, rec.Entry)
	}
	var entries [][]byte
	for _, p := range order {
		if pt := parts[p]; pt.ack.Refused == "" && len(pt.entries) > 0 {
			r.streams[p].busy = true
			r.inflight[p]++
			entries = append(entries, pt.entries...)
		}
	}
	return order, parts, entries
}

// logged moves each partition's stream past the entries just logged, or
// ends it if the log failed or it was stopped meanwhile.
func (r *Receiver) logged(order []int, parts map[int]*batchPart, logErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range order {
		pt := parts[p]
		if pt.ack.Refused != "" || len(pt.entries) == 0 {
			continue
		}
		st := r.streams[p]
		switch {
		case logErr != nil:
			pt.ack.Refused = RefusedFailed
			delete(r.streams, p)
		case st == nil:
			// Stopped meanwhile: logged, but the stream is over.
			pt.ack.Refused = RefusedStale
		default:
			st.busy, st.expect, st.seq = false, false, pt.last
			pt.ack.Seq = pt.last
		}
	}
}

// admit checks one record against its partition's stream (r.mu held);
// last is the batch's previous record of the partition, if any.
func (r *Receiver) admit(from string, rec Record, last uint64) string {
	st := r.streams[rec.Partition]
	if st == nil {
		return RefusedNotFollow
	}
	if st.busy {
		// A sender has one batch in flight, so a partition's batches
		// overlap only when two nodes ship it: one is stale.
		return RefusedStale
	}
	if err := r.cfg.Check(from, rec.Partition, rec.Version); err != nil {
		return RefusedStale
	}
	if st.from != from {
		// A new primary, which took the partition over from the one
		// followed and kept this replica in the set: its stream starts
		// here. Never back to an older one, nor while this copy is
		// being seeded (held) from another.
		if st.hold || rec.Version <= st.version {
			return RefusedStale
		}
		st.from, st.expect = from, true
	}
	st.version = max(st.version, rec.Version)
	prev := st.seq
	if last != 0 {
		prev = last
	} else if st.expect {
		st.run = rec.Run
		return ""
	}
	if rec.Run != st.run || rec.Seq > prev+1 {
		// Another run of the primary numbers its records anew: what
		// this copy has is not that stream's prefix.
		return RefusedGap
	}
	return ""
}
