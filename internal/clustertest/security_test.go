package clustertest

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dura-dev/dura/internal/peer"
)

const otherSecret = "some-other-secret-0123456789"

// dialerWith is how a node holding secret ("" for none) reaches peers.
func dialerWith(t *testing.T, secret string) peer.Dialer {
	t.Helper()
	if secret == "" {
		return peer.Dialer{}
	}
	conf, err := peer.FromSecrets([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	return peer.Dialer{TLS: conf}
}

// appendEntries sends a Raft AppendEntries of the given term to addr as
// a node holding secret would. A term far ahead, if admitted, would
// depose the leader.
func appendEntries(t *testing.T, addr, secret string, term uint64) (*raft.AppendEntriesResponse, error) {
	t.Helper()
	d := dialerWith(t, secret)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransport(intruderLayer{ln, d}, 1, 3*time.Second, io.Discard)
	defer tr.Close()
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(ln.Addr().String())},
		Term:      term,
		Entries:   []*raft.Log{{Index: 1 << 30, Term: term, Type: raft.LogCommand, Data: []byte(`{"kind":"remove","name":"n1"}`)}},
	}
	var resp raft.AppendEntriesResponse
	err = tr.AppendEntries("victim", raft.ServerAddress(addr), req, &resp)
	return &resp, err
}

type intruderLayer struct {
	net.Listener
	d peer.Dialer
}

func (l intruderLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.d.Dial(ctx, string(addr), peer.KindRaft)
}

// TestNodeWithAnotherSecretIsKeptOut: a node with the wrong secret
// cannot join, cannot forward into the cluster and cannot append to Raft;
// given the right secret, the same node joins.
func TestNodeWithAnotherSecretIsKeptOut(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	leader := c.Leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	before := leader.Cluster.State()
	if err := put(t, c.Nodes[0].Client, "kept", "safe"); err != nil {
		t.Fatal(err)
	}

	// Raft: the wrong secret (or none) cannot even deliver an append.
	for _, secret := range []string{otherSecret, ""} {
		if _, err := appendEntries(t, leader.Raft, secret, 1<<40); err == nil {
			t.Fatalf("AppendEntries with secret %q reached the leader", secret)
		}
	}

	// Node-to-node HTTP: the internal routes refuse the wrong secret on the
	// peer port and do not exist on the public port.
	for _, secret := range []string{otherSecret, ""} {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return dialerWith(t, secret).Dial(ctx, addr, peer.KindHTTP)
			}}}
		resp, err := hc.Post("http://"+leader.Raft+"/v1/internal/apply", "application/json",
			strings.NewReader(`{"kind":"remove","name":"n2"}`))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("peer port answered %d to secret %q", resp.StatusCode, secret)
		}
	}
	resp, err := http.Post("http://"+leader.HTTP+"/v1/internal/apply", "application/json", strings.NewReader(`{"kind":"remove","name":"n2"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public port answered %d to an internal route", resp.StatusCode)
	}

	// Gossip: the outsider tries to join through every member for a while
	// (many join attempts and gossip rounds at test timings) and is seen
	// by none, nor it sees them.
	out := c.JoinWithSecret(otherSecret)
	outsider := c.Nodes[out]
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range c.Nodes[:3] {
			if slices.Contains(nd.Cluster.GossipAlive(), outsider.Name) {
				t.Fatalf("%s sees the outsider in gossip", nd.Name)
			}
			if _, ok := nd.Cluster.State().Members[outsider.Name]; ok {
				t.Fatalf("%s has the outsider as a member", nd.Name)
			}
		}
		if got := outsider.Cluster.GossipAlive(); len(got) != 1 {
			t.Fatalf("the outsider sees %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := outsider.RT.Ready(context.Background()); err == nil {
		t.Fatal("the outsider is ready")
	}
	after := leader.Cluster.State()
	if after.Epoch != before.Epoch || len(after.Members) != len(before.Members) {
		t.Fatalf("the cluster changed: epoch %d -> %d, members %d -> %d", before.Epoch, after.Epoch, len(before.Members), len(after.Members))
	}
	if body, _ := readAll(t, c.Nodes[1].Client, "kept"); !strings.Contains(body, `"safe"`) {
		t.Fatalf("data after the intrusions: %s", body)
	}
	if c.Leader() != leader {
		t.Fatal("the leader changed")
	}

	// The same node with the right secret joins: the test above was not
	// vacuous.
	c.Kill(out)
	outsider.Secret = Secret
	c.Restart(out)
	c.WaitConverged(30 * time.Second)
	// A stale term: delivered and refused by Raft itself, harmlessly.
	if resp, err := appendEntries(t, leader.Raft, Secret, 0); err != nil || resp.Success || resp.Term == 0 {
		t.Fatalf("AppendEntries with the cluster secret: %+v %v", resp, err)
	}
}
