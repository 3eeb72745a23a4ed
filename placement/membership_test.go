package placement

import (
	"testing"
	"time"
)

func startMember(t *testing.T, name string) *Membership {
	t.Helper()
	m, err := NewMembership(MembershipConfig{Name: name, Bind: "127.0.0.1:0", Meta: MemberMeta{HTTP: name + ":8080", Raft: name + ":7947"}, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	waitFor(t, "everyone sees everyone", func() bool {
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
	waitFor(t, "a sees c left", func() bool { return stateOf(a, "c") == "left" })
	b.Close() // no goodbye: a failure
	waitFor(t, "a sees b dead", func() bool { return stateOf(a, "b") == "dead" })
}
