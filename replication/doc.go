// Package replication is the control-plane Raft group (hashicorp/raft with
// raft-boltdb): its state machine holds the members and their data
// directory incarnations, the ring parameters, each partition's owner and
// handoff, and the replicated alarm schedule; commands change it through
// the leader, snapshots keep its log short. Subpackage nodedb is a node's
// own bbolt file (object catalog, a lone node's alarms).
package replication
