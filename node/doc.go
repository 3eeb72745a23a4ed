// Package node is Dura's object runtime and its public Go SDK: the class
// registry, activation and eviction of objects, one-event-at-a-time
// execution with an output gate, the State/Storage/Stub handed to
// classes, and alarm timers. It knows the cluster only through the small
// interfaces it declares: Coordinator (may this partition run now, who
// owns what; package cluster implements it), AlarmSchedule (the
// replicated schedule; cluster's too) and ObjectCaller (reach an object
// on another node; rpc.Server implements it). A runtime without them is a
// lone node with its schedule in its own bbolt file.
package node
