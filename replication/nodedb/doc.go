// Package nodedb is a node's own bbolt file (node.db): the object catalog
// every node keeps for listings, and the alarm schedule of a node without
// a cluster. Its Alarm and FiredAlarm types are shared with the
// replicated schedule. It imports no Raft and no gossip, so the runtime
// (package node) can use it.
package nodedb
