//go:build !unix

package server

import "errors"

// ErrDataInUse is returned by Run when another process holds the data
// directory (detected on Unix only).
var ErrDataInUse = errors.New("data directory in use")

func lockData(string) (func(), error) { return func() {}, nil }
