package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dura-dev/dura/internal/apierr"
)

// doubtful is a Replicator whose writes' waits fail while fail is set,
// and which cannot settle them while unsettled is set.
type doubtful struct {
	fail, unsettled atomic.Bool
	confirms        atomic.Int32
}

func (d *doubtful) Replicate(p int, _ []byte) func() error {
	return func() error {
		if d.fail.Load() {
			return fmt.Errorf("%w: replicas of partition %d did not acknowledge; outcome unknown", apierr.ErrOwnerUnavailable, p)
		}
		return nil
	}
}

func (d *doubtful) Writable(int) error { return nil }

func (d *doubtful) Confirm(p int) error {
	d.confirms.Add(1)
	if d.unsettled.Load() {
		return fmt.Errorf("%w: partition %d is served by another node now", apierr.ErrOwnerUnavailable, p)
	}
	return nil
}

// TestWriteOfUnknownOutcomeHoldsTheObject: after a commit whose
// replication failed, no event of that object runs on this node (a read
// would show a write a new primary may not have) until the replicator
// settles it; other objects go on, and a partition set aside forgets it.
func TestWriteOfUnknownOutcomeHoldsTheObject(t *testing.T) {
	var runs atomic.Int32
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{"tally": tallyClass(&runs)})
	d := &doubtful{}
	if err := rt.SetReplicator(d); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, _, err := call(t, rt, "tally", name, "POST", "/", ""); err != nil {
			t.Fatal(err)
		}
	}
	d.fail.Store(true)
	d.unsettled.Store(true)
	if _, _, err := call(t, rt, "tally", "a", "POST", "/", ""); err == nil {
		t.Fatal("a write whose replication failed was acknowledged")
	}
	d.fail.Store(false)
	before := runs.Load()
	for range 2 {
		_, body, err := call(t, rt, "tally", "a", "GET", "/", "")
		if !errors.Is(err, apierr.ErrOwnerUnavailable) || !apierr.IsNotExecuted(err) {
			t.Fatalf("a read after a write of unknown outcome: %q %v, want OWNER_UNAVAILABLE, not executed", body, err)
		}
	}
	if runs.Load() != before {
		t.Fatal("the handler ran while the object's write was unsettled")
	}
	if _, body, err := call(t, rt, "tally", "b", "GET", "/", ""); err != nil || body != "1" {
		t.Fatalf("another object: %q %v", body, err)
	}
	d.unsettled.Store(false)
	if _, body, err := call(t, rt, "tally", "a", "GET", "/", ""); err != nil || body != "2" {
		t.Fatalf("once settled: %q %v, want the write", body, err)
	}
	n := d.confirms.Load()
	if _, _, err := call(t, rt, "tally", "a", "GET", "/", ""); err != nil || d.confirms.Load() != n {
		t.Fatalf("settled once, still asked: %v, %d confirms", err, d.confirms.Load()-n)
	}

	// A partition set aside takes its doubts with it.
	d.fail.Store(true)
	d.unsettled.Store(true)
	call(t, rt, "tally", "b", "POST", "/", "")
	ref, err := rt.ref("tally", "b")
	if err != nil {
		t.Fatal(err)
	}
	if !rt.unconfirmed.has(ref.id) {
		t.Fatal("b not held after its failed write")
	}
	if err := rt.DropPartition(context.Background(), ref.partition); err != nil {
		t.Fatal(err)
	}
	if rt.unconfirmed.has(ref.id) {
		t.Fatal("b still held after its partition was set aside")
	}
}
