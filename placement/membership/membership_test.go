package membership

import (
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

func startMember(t *testing.T, name string, partitions ...int) *Membership {
	t.Helper()
	meta := Meta{HTTP: name + ":8080", Raft: name + ":7947"}
	if len(partitions) > 0 {
		meta.Partitions = partitions[0]
	}
	m, err := New(Config{Name: name, Bind: "127.0.0.1:0", Meta: meta, Timing: Loopback})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func stateOf(m *Membership, name string) string {
	for _, p := range m.Peers() {
		if p.Name == name {
			return p.State
		}
	}
	return ""
}

func TestMembershipGossip(t *testing.T) {
	a, b, c := startMember(t, "a"), startMember(t, "b"), startMember(t, "c")
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.PollTrue(t, 15*time.Second, "everyone sees everyone", func() bool {
		for _, m := range []*Membership{a, b, c} {
			if len(m.Peers()) != 3 {
				return false
			}
		}
		return true
	})
	for _, p := range a.Peers() {
		if p.State != "alive" || p.Meta.HTTP != p.Name+":8080" || p.Meta.Raft != p.Name+":7947" {
			t.Fatalf("peer %+v", p)
		}
	}
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 15*time.Second, "a sees c left", func() bool { return stateOf(a, "c") == "left" })
	b.Close() // no goodbye: a failure
	testutil.PollTrue(t, 15*time.Second, "a sees b dead", func() bool { return stateOf(a, "b") == "dead" })
}

// TestMembershipRefusesOtherPartitionCount: a node started with another
// partition count than the cluster's cannot join its gossip (and so is
// never admitted); one of an older version (no count: 271) can join a
// 271-partition cluster.
func TestMembershipRefusesOtherPartitionCount(t *testing.T) {
	a := startMember(t, "a", 65521)
	b := startMember(t, "b", 271)
	_, err := b.Join([]string{a.Addr()})
	// memberlist flattens the refusal into its own message.
	if err == nil || !strings.Contains(err.Error(), ErrPartitionsDiffer.Error()) {
		t.Fatalf("join with 271 partitions a cluster of 65521: %v", err)
	}
	for _, want := range []string{"65521 partitions", "--partitions 65521"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if len(a.Peers()) > 1 || len(b.Peers()) > 1 {
		t.Fatalf("a sees %v, b sees %v", a.Peers(), b.Peers())
	}
	old := startMember(t, "old") // no count in its meta
	if _, err := old.Join([]string{b.Addr()}); err != nil {
		t.Fatalf("a node without a count joining 271: %v", err)
	}
	testutil.PollTrue(t, 15*time.Second, "b sees old", func() bool { return stateOf(b, "old") == "alive" })
}
