// Package placement maps objects to partitions and partitions to owners:
// object identity, the partition hash and the consistent-hash ring with
// bounded loads (Assign). It imports no gossip; membership, in its own
// subpackage, does.
package placement
