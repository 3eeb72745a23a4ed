// Package logging adapts the loggers of hashicorp/raft (hclog) and
// memberlist (*log.Logger) to log/slog, so their lines reach the node's
// handler as records with the right level and their fields as attributes.
package logging
