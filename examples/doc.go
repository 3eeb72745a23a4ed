// Package examples ports every pattern of the data-modelling guide to Dura
// object classes: a single-table counter, a TTL cache cleaned by alarms,
// a normalised chat room with cursor pagination and archiving, a
// denormalised analytics log, bank accounts with explicit transactions,
// optimistic locking, compressed storage and versioned migrations.
// RegisterAll adds them all to a runtime; each file holds one class.
package examples
