package shipping

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

func TestBatchRoundTrip(t *testing.T) {
	recs := []Record{{Partition: 3, Version: 7, Run: 5, Seq: 1, Entry: []byte("a")}, {Partition: 270, Version: 1 << 40, Run: 1 << 63, Seq: 99, Entry: bytes.Repeat([]byte{9}, 5000)}}
	b := EncodeBatch(recs)
	got, err := DecodeBatch(b)
	if err != nil || len(got) != 2 {
		t.Fatalf("decode: %v %v", got, err)
	}
	for i := range recs {
		if got[i].Partition != recs[i].Partition || got[i].Version != recs[i].Version || got[i].Run != recs[i].Run || got[i].Seq != recs[i].Seq || !bytes.Equal(got[i].Entry, recs[i].Entry) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append([]byte("XXXX"), b[4:]...), flip(b, 30)} {
		if _, err := DecodeBatch(bad); err == nil {
			t.Errorf("a damaged batch (%d bytes) decoded", len(bad))
		}
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 1
	return c
}

// replica is a Receiver with an in-memory log.
type replica struct {
	*Receiver
	mu      sync.Mutex
	logged  [][]byte
	applied map[int][]string
	failLog bool
	primary string // who Check accepts...
	known   uint64 // ...and anyone shipping a version above this (0: no one)
}

func newReplica(primary string) *replica {
	r := &replica{applied: map[int][]string{}, primary: primary}
	r.Receiver = NewReceiver(ReceiverConfig{
		MaxHeldBytes: 64,
		Log: func(entries [][]byte) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.failLog {
				return errors.New("disk full")
			}
			r.logged = append(r.logged, entries...)
			return nil
		},
		Apply: func(p int, entries [][]byte) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, e := range entries {
				r.applied[p] = append(r.applied[p], string(e))
			}
		},
		Check: func(from string, p int, v uint64) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if from != r.primary && (r.known == 0 || v <= r.known) {
				return fmt.Errorf("%s is not the primary", from)
			}
			return nil
		},
	})
	return r
}

// follow starts a stream with nothing held (a seeding that took no time).
func (r *replica) follow(t *testing.T, p int, from string) {
	t.Helper()
	r.Expect(p, from)
	if err := r.Release(p, func([][]byte, bool) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func (r *replica) loggedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.logged)
}

func (r *replica) appliedOf(p int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied[p])
}

func rec(p int, seq uint64) Record {
	return Record{Partition: p, Version: 1, Seq: seq, Entry: []byte(fmt.Sprintf("p%d-%d", p, seq))}
}

func TestReceiverStreams(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expect  bool
		from    string
		failLog bool
		batches [][]Record
		want    []Ack // answers to the last batch
		applied []string
	}{
		{"starts at the first record", true, "a", false, [][]Record{{rec(1, 5), rec(1, 6)}}, []Ack{{Partition: 1, Seq: 6}}, []string{"p1-5", "p1-6"}},
		{"continues", true, "a", false, [][]Record{{rec(1, 5)}, {rec(1, 6), rec(1, 7)}}, []Ack{{Partition: 1, Seq: 7}}, []string{"p1-5", "p1-6", "p1-7"}},
		{"a resend is acknowledged, not applied twice", true, "a", false, [][]Record{{rec(1, 5), rec(1, 6)}, {rec(1, 6), rec(1, 7)}}, []Ack{{Partition: 1, Seq: 7}}, []string{"p1-5", "p1-6", "p1-7"}},
		{"a gap is refused", true, "a", false, [][]Record{{rec(1, 5)}, {rec(1, 7)}}, []Ack{{Partition: 1, Refused: RefusedGap}}, []string{"p1-5"}},
		{"a gap within a batch", true, "a", false, [][]Record{{rec(1, 5), rec(1, 7)}}, []Ack{{Partition: 1, Refused: RefusedGap}}, nil},
		// A primary restarted numbers from 1 again: its record 1 is not
		// the old stream's record 1, and must not be acknowledged as a
		// resend.
		{"another run of the primary", true, "a", false, [][]Record{{rec(1, 1), rec(1, 2)}, {{Partition: 1, Version: 1, Run: 2, Seq: 1, Entry: []byte("new")}}}, []Ack{{Partition: 1, Refused: RefusedGap}}, []string{"p1-1", "p1-2"}},
		{"not followed", false, "a", false, [][]Record{{rec(1, 1)}}, []Ack{{Partition: 1, Refused: RefusedNotFollow}}, nil},
		{"not from the primary", true, "b", false, [][]Record{{rec(1, 1)}}, []Ack{{Partition: 1, Refused: RefusedStale}}, nil},
		{"log failure", true, "a", true, [][]Record{{rec(1, 1)}}, []Ack{{Partition: 1, Refused: RefusedFailed}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica("a")
			r.failLog = tc.failLog
			if tc.expect {
				r.follow(t, 1, tc.from)
			}
			var acks []Ack
			for _, b := range tc.batches {
				var err error
				if acks, err = r.Receive(tc.from, EncodeBatch(b)); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(acks, tc.want) {
				t.Fatalf("acks %+v, want %+v", acks, tc.want)
			}
			if got := r.appliedOf(1); !slices.Equal(got, tc.applied) {
				t.Fatalf("applied %v, want %v", got, tc.applied)
			}
			if tc.want[0].Refused != "" && tc.want[0].Refused != RefusedNotFollow {
				// The stream is over: even the next record is refused.
				acks, _ := r.Receive(tc.from, EncodeBatch([]Record{rec(1, 8)}))
				if acks[0].Refused == "" {
					t.Fatalf("after a refusal the stream went on: %+v", acks)
				}
			}
		})
	}
}

// After a handoff that kept this replica in the in-sync set, the new
// primary's records start a stream here: only a newer primary's (a
// higher version), never an older one's again, and never while the copy
// is being seeded from another.
func TestReceiverFollowsANewPrimary(t *testing.T) {
	at := func(v, run, seq uint64, entry string) Record {
		return Record{Partition: 1, Version: v, Run: run, Seq: seq, Entry: []byte(entry)}
	}
	receive := func(t *testing.T, r *replica, from string, recs ...Record) Ack {
		t.Helper()
		acks, err := r.Receive(from, EncodeBatch(recs))
		if err != nil {
			t.Fatal(err)
		}
		return acks[0]
	}
	// following is a replica following a's stream of partition 1, that
	// takes records above version known from anyone.
	following := func(t *testing.T, known uint64) *replica {
		r := newReplica("a")
		r.known = known
		r.follow(t, 1, "a")
		return r
	}
	t.Run("switches to the newer primary", func(t *testing.T) {
		r := following(t, 1)
		receive(t, r, "a", at(1, 1, 5, "a5"), at(1, 1, 6, "a6"))
		// b took over at version 2; this replica has not applied that yet.
		if a := receive(t, r, "b", at(2, 9, 40, "b40"), at(2, 9, 41, "b41")); a.Refused != "" || a.Seq != 41 {
			t.Fatalf("the new primary's first records: %+v", a)
		}
		// a's late record (Check still passes here: a is the primary
		// this replica knows) is refused, and b's stream goes on.
		if a := receive(t, r, "a", at(1, 1, 7, "a7")); a.Refused != RefusedStale {
			t.Fatalf("the old primary's late record: %+v", a)
		}
	})
	t.Run("a gap in the new stream is still refused", func(t *testing.T) {
		r := following(t, 1)
		receive(t, r, "b", at(2, 9, 40, "b40"))
		if a := receive(t, r, "b", at(2, 9, 42, "b42")); a.Refused != RefusedGap {
			t.Fatalf("a gap after the switch: %+v", a)
		}
	})
	t.Run("not to an older or equal version", func(t *testing.T) {
		r := following(t, 3)
		receive(t, r, "a", at(3, 1, 5, "a5"))
		r.mu.Lock()
		r.primary = "b" // this replica's state says b (at version 3)
		r.mu.Unlock()
		if a := receive(t, r, "b", at(3, 9, 1, "b1")); a.Refused != RefusedStale {
			t.Fatalf("a primary of the same version: %+v", a)
		}
	})
	t.Run("not while seeded", func(t *testing.T) {
		r := newReplica("a")
		r.known = 1
		r.Expect(1, "a")
		if a := receive(t, r, "b", at(2, 9, 40, "b40")); a.Refused != RefusedStale {
			t.Fatalf("a held stream switched: %+v", a)
		}
	})
	r := following(t, 1)
	receive(t, r, "a", at(1, 1, 5, "a5"))
	receive(t, r, "b", at(2, 9, 40, "b40"))
	receive(t, r, "b", at(2, 9, 41, "b41"))
	if got, want := r.appliedOf(1), []string{"a5", "b40", "b41"}; !slices.Equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
}

// memTransport delivers batches to in-process replicas; a blocked peer
// holds its batches until the sender gives up, then loses them.
type memTransport struct {
	replicas map[string]*replica
	mu       sync.Mutex
	blocked  map[string]bool
}

func (m *memTransport) setBlocked(peer string, b bool) {
	m.mu.Lock()
	m.blocked[peer] = b
	m.mu.Unlock()
}

func (m *memTransport) Send(ctx context.Context, peer string, batch []byte) ([]Ack, error) {
	m.mu.Lock()
	blocked := m.blocked[peer]
	m.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return m.replicas[peer].Receive("a", batch)
}

func TestShipperAcknowledgesAndCutsOffLaggards(t *testing.T) {
	b, c := newReplica("a"), newReplica("a")
	tr := &memTransport{replicas: map[string]*replica{"b": b, "c": c}, blocked: map[string]bool{}}
	s := NewShipper(Config{Transport: tr, Timeout: 200 * time.Millisecond})
	defer s.Close()
	b.follow(t, 1, "a")
	c.follow(t, 1, "a")
	var pending []*Pending
	for seq := uint64(1); seq <= 50; seq++ {
		pending = append(pending, s.Ship(rec(1, seq), []string{"b", "c"}, []string{"b", "c"}))
	}
	for i, p := range pending {
		if lag := p.Wait(context.Background()); len(lag) != 0 {
			t.Fatalf("record %d: lagging %v", i+1, lag)
		}
	}
	if got := b.appliedOf(1); len(got) != 50 || got[49] != "p1-50" {
		t.Fatalf("b applied %d records", len(got))
	}

	// c stops answering: the next record waits the timeout, names c,
	// and c is cut off, so later records fail at once for it.
	tr.setBlocked("c", true)
	if lag := s.Ship(rec(1, 51), []string{"b", "c"}, []string{"b", "c"}).Wait(context.Background()); !slices.Equal(lag, []string{"c"}) {
		t.Fatalf("lagging %v, want [c]", lag)
	}
	start := time.Now()
	if lag := s.Ship(rec(1, 52), []string{"b", "c"}, []string{"b", "c"}).Wait(context.Background()); !slices.Equal(lag, []string{"c"}) {
		t.Fatalf("lagging %v, want [c]", lag)
	}
	if waited := time.Since(start); waited > 150*time.Millisecond {
		t.Fatalf("a cut-off replica was waited for %v", waited)
	}
	// Not awaited (out of the in-sync set): b alone decides.
	if lag := s.Ship(rec(1, 53), []string{"b", "c"}, []string{"b"}).Wait(context.Background()); len(lag) != 0 {
		t.Fatalf("lagging %v", lag)
	}
	tr.setBlocked("c", false)

	// Re-seeded: c follows again from the next record.
	c.follow(t, 1, "a")
	s.Resume("c", 1)
	if lag := s.Ship(rec(1, 54), []string{"b", "c"}, []string{"b", "c"}).Wait(context.Background()); len(lag) != 0 {
		t.Fatalf("after resume: lagging %v", lag)
	}
	if got := c.appliedOf(1); got[len(got)-1] != "p1-54" {
		t.Fatalf("c applied %v", got[len(got)-3:])
	}
}

// While a replica is seeded its partition's records are acknowledged and
// held (not logged, not applied); Release hands them over in order, and
// the stream then goes on as usual.
func TestReceiverHoldsWhileSeeding(t *testing.T) {
	r := newReplica("a")
	r.Expect(1, "a")
	for _, b := range [][]Record{{rec(1, 4), rec(1, 5)}, {rec(1, 6)}} {
		acks, err := r.Receive("a", EncodeBatch(b))
		if err != nil || acks[0].Refused != "" || acks[0].Seq != b[len(b)-1].Seq {
			t.Fatalf("held batch answered %+v, %v", acks, err)
		}
	}
	if r.loggedCount() != 0 || len(r.appliedOf(1)) != 0 {
		t.Fatal("records of a partition being seeded were logged or applied")
	}
	// Records that arrive while the first ones are installed are held
	// too, and handed over next (not first).
	var got []string
	calls := 0
	if err := r.Release(1, func(held [][]byte, first bool) error {
		if first != (calls == 0) {
			t.Errorf("call %d: first = %v", calls, first)
		}
		if calls++; calls == 1 {
			if acks, _ := r.Receive("a", EncodeBatch([]Record{rec(1, 7)})); acks[0].Seq != 7 {
				t.Errorf("a record held during the install: %+v", acks)
			}
		}
		for _, h := range held {
			got = append(got, string(h))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"p1-4", "p1-5", "p1-6", "p1-7"}) || calls != 2 {
		t.Fatalf("released %v in %d calls", got, calls)
	}
	acks, _ := r.Receive("a", EncodeBatch([]Record{rec(1, 8)}))
	if acks[0].Seq != 8 || r.loggedCount() != 1 || !slices.Equal(r.appliedOf(1), []string{"p1-8"}) {
		t.Fatalf("after release: %+v, logged %d, applied %v", acks, r.loggedCount(), r.appliedOf(1))
	}

	// A failed install ends the stream; so does releasing one that ended.
	r.Expect(2, "a")
	if err := r.Release(2, func([][]byte, bool) error { return errors.New("disk full") }); err == nil {
		t.Fatal("a failed install was not reported")
	}
	if acks, _ := r.Receive("a", EncodeBatch([]Record{rec(2, 1)})); acks[0].Refused != RefusedNotFollow {
		t.Fatalf("after a failed install: %+v", acks)
	}
	if err := r.Release(3, func([][]byte, bool) error { return nil }); err == nil {
		t.Fatal("released a stream never expected")
	}

	// Held records past the bound end the stream: the seeding restarts.
	r.Expect(4, "a")
	big := Record{Partition: 4, Version: 1, Seq: 1, Entry: make([]byte, 100)}
	if acks, _ := r.Receive("a", EncodeBatch([]Record{big})); acks[0].Refused != RefusedOverflow {
		t.Fatalf("held past the bound: %+v", acks)
	}
	if err := r.Release(4, func([][]byte, bool) error { return nil }); err == nil {
		t.Fatal("released a stream that overflowed")
	}
}

// Lag counts what a replica has not acknowledged, and for how long.
func TestShipperLag(t *testing.T) {
	b := newReplica("a")
	tr := &memTransport{replicas: map[string]*replica{"b": b}, blocked: map[string]bool{"b": true}}
	s := NewShipper(Config{Transport: tr, Timeout: time.Minute})
	defer s.Close()
	b.follow(t, 1, "a")
	for seq := uint64(1); seq <= 3; seq++ {
		s.Ship(rec(1, seq), []string{"b"}, []string{"b"})
	}
	testutil.PollTrue(t, 5*time.Second, "three records lagging", func() bool {
		l := s.Lag()["b"]
		return l.Records == 3 && l.Oldest > 0
	})
	s.Close() // ends the blocked send too
	if l := s.Lag()["b"]; l.Records != 0 {
		t.Fatalf("after close: %+v", l)
	}
}
