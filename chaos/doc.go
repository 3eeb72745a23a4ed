// Package chaos proves Dura's promises by breaking it on purpose: it runs
// real dura processes, each in its own network namespace joined to a
// bridge (or on loopback where namespaces are unavailable), injects
// faults (kill -9, SIGSTOP, isolation, minority/majority splits, leader
// kills, packet loss and delay, joins and leaves, a full disk, rolling
// restarts), drives workloads that record every operation with its
// invocation, completion and outcome (counters, bank transfers,
// read/write/compare-and-set registers, alarms, sharded counters whose
// increments cross nodes through stubs), and checks the history:
// no acknowledged write lost, counters (and each shard of a sharded
// counter) in real-time order, sharded totals the sum of their shards, registers
// linearizable (porcupine, within a budget; inconclusive fails), the
// bank's ledger holding exactly its acknowledged (and some uncertain)
// transfers with balances and reads to match, no object served by two
// nodes at once (two nodes acknowledging one object in one epoch while
// both requests were in flight, or overlapping reminder runs), every acknowledged alarm fired, never early, no node
// exiting on its own. An operation is unknown only when it may have run
// (classify).
//
// Entry points: `go test -short ./chaos` runs the representative set;
// `DURA_CHAOS_FULL=1 go test -timeout 90m -run TestChaos ./chaos` the full
// set, writing chaos/reports/latest.json.
package chaos
