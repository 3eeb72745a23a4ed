package cluster

import (
	"context"

	"github.com/dura-dev/dura/replication/shipping"
)

// Hooks let tests inject faults into a running node (SetHooks); a
// production node has none.
type Hooks struct {
	// ShipFault, when it returns an error, fails each batch of records
	// this node ships to peer, as a broken connection would.
	ShipFault func(peer string) error
	// BeforeAdmit runs in a seeding of partition p here once the copy is
	// installed, before the primary is asked to admit it.
	BeforeAdmit func(p int)
}

// SetHooks installs h (nil: none). Tests only.
func (c *Cluster) SetHooks(h *Hooks) { c.hooks.Store(h) }

// hookedTransport ships through next unless a ShipFault fails the batch.
type hookedTransport struct {
	c    *Cluster
	next shipping.Transport
}

func (t hookedTransport) Send(ctx context.Context, peer string, batch []byte) ([]shipping.Ack, error) {
	if h := t.c.hooks.Load(); h != nil && h.ShipFault != nil {
		if err := h.ShipFault(peer); err != nil {
			return nil, err
		}
	}
	return t.next.Send(ctx, peer, batch)
}
