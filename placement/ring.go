package placement

import (
	"fmt"
	"sort"

	"github.com/buraksezer/consistent"
)

// RingConfig fixes how partitions map to members. Every node must use the
// same values, so a cluster records them once (in its Raft state) when it
// is created, not in flags.
type RingConfig struct {
	// Partitions is the partition count, a prime; 271 by default.
	Partitions int `json:"partitions"`
	// ReplicationFactor is the number of virtual nodes per member on the
	// hash ring; 20 by default.
	ReplicationFactor int `json:"replication_factor"`
	// Load bounds any member's partitions to Load times the average; 1.25
	// by default.
	Load float64 `json:"load"`
}

// DefaultRingConfig is the ring of a new cluster.
func DefaultRingConfig() RingConfig {
	return RingConfig{Partitions: DefaultPartitions, ReplicationFactor: 20, Load: 1.25}
}

// Validate reports a ring that cannot place partitions.
func (c RingConfig) Validate() error {
	if c.Partitions <= 0 || c.ReplicationFactor <= 0 || c.Load < 1 {
		return fmt.Errorf("ring config %+v: partitions and replication factor must be positive, load at least 1", c)
	}
	return nil
}

type member string

func (m member) String() string { return string(m) }

// Assign maps every partition to one of members (by name) with consistent
// hashing and bounded loads. The answer depends only on the set of names
// and cfg, not on their order, so every node computes the same owners from
// the same committed member set. It returns nil when there are no members.
func Assign(members []string, cfg RingConfig) []string {
	if len(members) == 0 {
		return nil
	}
	names := append([]string(nil), members...)
	sort.Strings(names)
	ms := make([]consistent.Member, 0, len(names))
	for i, n := range names {
		if i > 0 && names[i-1] == n {
			continue
		}
		ms = append(ms, member(n))
	}
	ring := consistent.New(ms, consistent.Config{
		PartitionCount:    cfg.Partitions,
		ReplicationFactor: cfg.ReplicationFactor,
		Load:              cfg.Load,
		Hasher:            Hasher{},
	})
	out := make([]string, cfg.Partitions)
	for p := range out {
		out[p] = ring.GetPartitionOwner(p).String()
	}
	return out
}
