// Package rpc is Dura's HTTP API: the public and admin routes of a node,
// the error and header conventions (with "not_executed"), request limits,
// tokens, metrics, and the Go client used by the CLI, tests and
// benchmarks. In a cluster it also routes: a request for an object owned
// elsewhere is forwarded to the owner (waiting for one that is briefly
// unavailable), object-to-object calls cross nodes (CallObject), and
// node-to-node calls decode each other's errors (PeerClient). It declares
// what it needs of the layers above: Backend, Router and ClusterInternal.
package rpc
