// Package placement maps objects to partitions and partitions to owners:
// object identity, the partition hash, the consistent-hash ring with
// bounded loads (Assign) and gossip membership.
package placement
