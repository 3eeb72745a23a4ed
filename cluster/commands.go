package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

func (c *Cluster) applyLocal(cmd replication.Command) {
	if err := c.raft.Apply(cmd, 5*time.Second); err != nil {
		c.log.Debug("cluster command refused", "kind", cmd.Kind, "err", err)
	}
}

// Apply commits a command through the leader, wherever it is.
func (c *Cluster) Apply(ctx context.Context, cmd replication.Command) error {
	if c.raft.IsLeader() {
		return c.raft.Apply(cmd, 5*time.Second)
	}
	leader, ok := c.leader()
	if !ok {
		// Outside the Raft group (a node that left and came back) this
		// node hears from no leader: any active member passes it on.
		st := c.state.Load()
		for _, name := range st.ActiveMembers() {
			if m := st.Members[name]; name != c.cfg.Name {
				leader, ok = rpc.Peer{Name: m.Name, Addr: m.Raft}, true
				break
			}
		}
	}
	if !ok {
		return fmt.Errorf("%w: no known leader", apierr.ErrOwnerUnavailable)
	}
	b, _ := json.Marshal(cmd)
	_, err := c.peers.Call(ctx, leader, http.MethodPost, "/v1/internal/apply", b)
	return err
}

// leader is the Raft leader as this node knows it, with its peer address.
func (c *Cluster) leader() (rpc.Peer, bool) {
	id, _ := c.raft.Leader()
	m := c.state.Load().Members[id]
	if m == nil || m.Raft == "" {
		return rpc.Peer{}, false
	}
	return rpc.Peer{Name: m.Name, Addr: m.Raft}, true
}

// ApplyCommand commits a command forwarded by another node.
func (c *Cluster) ApplyCommand(ctx context.Context, body []byte) error {
	var cmd replication.Command
	if err := json.Unmarshal(body, &cmd); err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	err := c.raft.Apply(cmd, 5*time.Second)
	if errors.Is(err, replication.ErrNotLeader) {
		// Pass it on once, to the leader this node knows.
		leader, ok := c.leader()
		if !ok || cmd.Hops > 0 {
			return fmt.Errorf("%w: not the leader", apierr.ErrOwnerUnavailable)
		}
		cmd.Hops++
		b, _ := json.Marshal(cmd)
		_, err = c.peers.Call(ctx, leader, http.MethodPost, "/v1/internal/apply", b)
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", apierr.ErrConflict, err)
	}
	return nil
}

// SetPeerHandler sets what serves the node-to-node HTTP API on the peer
// port (rpc.Server.PeerHandler); until then peers get 503.
func (c *Cluster) SetPeerHandler(h http.Handler) { c.peerHandler.Store(&h) }

// PeerSecure reports whether the peer port admits only authenticated
// nodes, so requests arriving there can be trusted.
func (c *Cluster) PeerSecure() bool { return c.cfg.TLS != nil }

// Forwarder is the client that forwards requests to other nodes' peer
// ports, at the addresses Route returns.
func (c *Cluster) Forwarder() *http.Client { return c.fwd }

func (c *Cluster) servePeer(w http.ResponseWriter, r *http.Request) {
	if h := c.peerHandler.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, `{"error":{"code":"OWNER_UNAVAILABLE","message":"node starting"}}`, http.StatusServiceUnavailable)
}
