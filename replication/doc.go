// Package replication keeps the state that must survive a node: for now
// the alarm schedule of a single node in a local bbolt file. The Raft
// group of the cluster will hold the same schedule behind the same
// methods.
package replication
