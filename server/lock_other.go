//go:build !unix

package server

// lockData does nothing off Unix: there is no flock to take.
func lockData(string) (func(), error) { return func() {}, nil }
