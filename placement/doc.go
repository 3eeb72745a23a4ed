// Package placement maps objects to partitions and partitions to owners.
// For now it holds the object identity rules and the partition hash, which
// the consistent-hash ring of the cluster will reuse unchanged.
package placement
