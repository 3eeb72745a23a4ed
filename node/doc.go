// Package node is Dura's object runtime and its public Go SDK: the class
// registry, activation and eviction of objects, one-event-at-a-time
// execution with an output gate, the State/Storage/Stub handed to
// classes, and alarm timers. It knows the cluster only through the small
// interfaces it declares (Coordinator: may this partition run now, who
// owns what; ObjectCaller: reach an object on another node); package
// cluster implements them, and a runtime without one is a lone node.
package node
