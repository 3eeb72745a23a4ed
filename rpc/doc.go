// Package rpc is Dura's HTTP API: the public and admin routes of a node,
// the error and header conventions, request limits, metrics, and the Go
// client used by the CLI, tests and benchmarks.
package rpc
