// Package cluster is the coordinator that makes runtimes one cluster:
// joining (gossip, bootstrap, Raft voters), fencing (this node's lease on
// contact with the Raft leader, caught up, ready, data directory
// incarnation), deciding each object's route (rpc forwards), partition
// handoff, arming and clearing alarms of the replicated schedule, the
// commands sent to the leader and cluster-wide listings. It drives a
// node.Runtime through the hooks node exports.
package cluster
