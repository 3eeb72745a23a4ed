// Package server runs a Dura node the way "dura serve" does: it reads the
// node's flags and DURA_* environment into a Config and wires runtime,
// cluster and HTTP API together in Run. A program with its own object
// classes calls Main (or ParseFlags and Run) with functions that register
// them, and gets the same node, flags and behaviour as the stock binary.
package server
