// Package examples ports every pattern of the data-modelling guide to Dura
// object classes: a single-table counter, a TTL cache cleaned by alarms,
// a normalised chat room with cursor pagination and archiving, a
// denormalised analytics log, bank accounts with explicit transactions,
// optimistic locking, compressed storage, versioned migrations, webhook
// reminders (alarms with at-least-once delivery) and a counter sharded
// over 8 objects through object-to-object calls.
// RegisterAll adds them all to a runtime; each file holds one class.
package examples
