// Package node is Dura's object runtime and its public Go SDK: the class
// registry, activation and eviction of objects, one-event-at-a-time
// execution with an output gate, the State/Storage/Stub handed to classes,
// and alarm timers.
package node
