// Package shipping carries partitions' log records from their primaries
// to their replicas: a Shipper on the primary batches records per peer
// and tells who acknowledged in time; a Receiver on the replica checks
// each partition's stream for gaps and stale senders, makes the records
// durable, applies them and acknowledges.
package shipping
