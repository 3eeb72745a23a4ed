// Package cluster is the coordinator that makes runtimes one cluster:
// joining (gossip, bootstrap, Raft voters), fencing and the leader lease,
// routing and forwarding, partition handoff, arming and clearing alarms
// of the replicated schedule, node-to-node calls and cluster-wide
// listings. It drives a node.Runtime through the hooks node exports.
package cluster
