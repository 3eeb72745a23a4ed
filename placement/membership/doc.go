// Package membership is gossip membership (hashicorp/memberlist): which
// nodes are alive, what each tells the others about itself (its HTTP and
// peer addresses, data directory incarnation, partition count), and the
// refusal of nodes that would place objects with another ring. It only
// detects failures; who is a member is decided by Raft.
package membership
