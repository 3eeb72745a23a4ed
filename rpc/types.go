package rpc

import (
	"context"
	"io"
	"net/http"
)

// Statement is one SQL statement of a /sql request.
type Statement struct {
	SQL    string `json:"sql"`
	Params []any  `json:"params,omitempty"`
}

// SQLRequest is the body of POST /v1/objects/{class}/{name}/sql: either a
// list of statements or one statement inline.
type SQLRequest struct {
	Statements []Statement `json:"statements,omitempty"`
	SQL        string      `json:"sql,omitempty"`
	Params     []any       `json:"params,omitempty"`
}

// SQLResult is the result of one statement.
type SQLResult struct {
	Columns      []string `json:"columns"`
	Rows         [][]any  `json:"rows"`
	RowsRead     int64    `json:"rows_read"`
	RowsWritten  int64    `json:"rows_written"`
	Changes      int64    `json:"changes"`
	LastInsertID int64    `json:"last_insert_id"`
}

// SQLResponse is the answer of /sql.
type SQLResponse struct {
	Results []SQLResult `json:"results"`
}

// KVEntry is one KV pair; Value is raw JSON.
type KVEntry struct {
	Key   string  `json:"key"`
	Value RawJSON `json:"value"`
}

// KVListResponse is the answer of GET .../kv.
type KVListResponse struct {
	Entries []KVEntry `json:"entries"`
}

// KVList selects a key range.
type KVList struct {
	Prefix, Start, StartAfter, End string
	Limit                          int
	Reverse                        bool
}

// AlarmResponse is the answer of the alarm routes; Alarm is unix ms or null.
type AlarmResponse struct {
	Alarm *int64 `json:"alarm"`
}

// AlarmRequest is the body of PUT .../alarm.
type AlarmRequest struct {
	At *int64 `json:"at"`
}

// ObjectInfo is the answer of GET /v1/objects/{class}/{name}.
type ObjectInfo struct {
	ID        string `json:"id"`
	Class     string `json:"class"`
	Name      string `json:"name"`
	Partition int    `json:"partition"`
	Owner     string `json:"owner"`
	// Primary is the owner; Replicas are the members holding a copy of
	// its partition, primary first.
	Primary   string   `json:"primary"`
	Replicas  []string `json:"replicas"`
	SizeBytes int64    `json:"size_bytes"`
	Alarm     *int64   `json:"alarm"`
	// AlarmHandler, in GET /v1/objects/{class}/{name}, says whether the
	// class runs code when the alarm fires; an alarm of a class without
	// a handler (db, counter) fires and clears doing nothing.
	AlarmHandler *bool `json:"alarm_handler,omitempty"`
}

// ObjectList is the answer of GET /v1/objects.
type ObjectList struct {
	Objects []ObjectInfo `json:"objects"`
	Cursor  string       `json:"cursor,omitempty"`
	// Unavailable names the members that could not be asked: the list
	// lacks their objects.
	Unavailable []string `json:"unavailable,omitempty"`
}

// Member is one node of /v1/cluster.
type Member struct {
	Name string `json:"name"`
	HTTP string `json:"http"`
	// Status is alive, suspect or dead (gossip), left (after a graceful
	// leave) or removed (taken out with node remove --force).
	Status     string `json:"status"`
	Partitions int    `json:"partitions"`
	// Primaries counts the partitions it is the primary of (the same as
	// Partitions), Replicas those it holds a further copy of.
	Primaries int `json:"primaries"`
	Replicas  int `json:"replicas"`
	// DataMissing is set when the member came back with an empty or
	// different data directory: its partitions are unavailable until it
	// gets its original directory back or is removed.
	DataMissing bool `json:"data_missing,omitempty"`
}

// ClusterInfo is the answer of GET /v1/cluster.
type ClusterInfo struct {
	Node       string `json:"node"`
	Leader     string `json:"leader"`
	Epoch      uint64 `json:"epoch"`
	Partitions int    `json:"partitions"`
	// ReplicationFactor is the copies kept of each partition (capped by
	// the member count); UnderReplicated counts the partitions with fewer
	// in-sync copies than that.
	ReplicationFactor int `json:"replication_factor"`
	UnderReplicated   int `json:"under_replicated"`
	// Lagging names the first of those partitions (at most
	// MaxLaggingListed, lowest numbers first) with their replica sets, so
	// an operator sees which copies are missing; absent when none is.
	Lagging []PartitionCopies `json:"under_replicated_partitions,omitempty"`
	Members []Member          `json:"members"`
	// UnavailablePartitions counts the partitions no live node can serve
	// until someone acts: their owner is dead or lost its data.
	UnavailablePartitions int `json:"unavailable_partitions"`
	// MovingPartitions counts the partitions being handed off now;
	// requests for them wait until the move completes.
	MovingPartitions int `json:"moving_partitions"`
	// MovesPending counts the partitions (with copies) whose primary is
	// not on the member the ring gives them: that member's copy is being
	// seeded, then the primary moves there, and the partition's other
	// replicas are seeded again (under_replicated counts them meanwhile).
	MovesPending int `json:"moves_pending"`
	// CatchingUp is set while this node replays the cluster's log after a
	// restart: until then its view (epoch, partitions) is behind.
	CatchingUp bool `json:"catching_up,omitempty"`
	// History is the answering node's point-in-time recovery history;
	// absent when it keeps none.
	History *HistoryInfo `json:"history,omitempty"`
}

// MaxLaggingListed bounds ClusterInfo.Lagging.
const MaxLaggingListed = 16

// PartitionCopies is one partition's copies as the answering node's
// control-plane state records them: its primary, the members holding a
// copy (primary first), those known to hold every acknowledged write,
// and the member it is moving to, if any.
type PartitionCopies struct {
	Partition int      `json:"partition"`
	Primary   string   `json:"primary"`
	Replicas  []string `json:"replicas"`
	InSync    []string `json:"in_sync"`
	Version   uint64   `json:"version"`
	Target    string   `json:"target,omitempty"`
}

// HistoryInfo is one node's history: how long it keeps commits, the
// bytes it holds and the commit time (unix ms) of the oldest point it can
// restore (0 until its first trim, or with nothing kept).
type HistoryInfo struct {
	Retention        string `json:"retention"`
	Bytes            int64  `json:"bytes"`
	OldestRestorable int64  `json:"oldest_restorable"`
}

// ErrorBody is every error answer: {"error":{"code","message"}}, with
// "statement" (0-based) when a /sql statement failed, and
// "not_executed": true when the node knows the request did not run (it
// was refused before its event started), so retrying it cannot apply it
// twice.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Statement *int   `json:"statement,omitempty"`
	// NotExecuted is true when the request did not run.
	NotExecuted bool `json:"not_executed,omitempty"`
}

// RawJSON is a JSON value kept as bytes.
type RawJSON []byte

// MarshalJSON returns the bytes as they are ("null" when empty).
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps a copy of the bytes.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// Backend is what the HTTP API serves. The node runtime implements it.
// All methods are safe to call concurrently.
type Backend interface {
	// NodeName names this node in X-Dura-Node.
	NodeName() string
	// KnownClass reports whether class is registered (metrics label only
	// known classes, so junk paths cannot grow them without bound).
	KnownClass(class string) bool
	// Call runs the class's handler for r. The response is written to w
	// only after the event committed; an error returned before anything
	// was written is answered by the server.
	Call(ctx context.Context, class, name string, w http.ResponseWriter, r *http.Request) error
	SQL(ctx context.Context, class, name string, stmts []Statement) ([]SQLResult, error)
	KVGet(ctx context.Context, class, name, key string) (RawJSON, error)
	KVPut(ctx context.Context, class, name, key string, value RawJSON) error
	KVDelete(ctx context.Context, class, name, key string) (bool, error)
	KVList(ctx context.Context, class, name string, o KVList) ([]KVEntry, error)
	GetAlarm(ctx context.Context, class, name string) (*int64, error)
	SetAlarm(ctx context.Context, class, name string, atMillis int64) error
	DeleteAlarm(ctx context.Context, class, name string) error
	Info(ctx context.Context, class, name string) (ObjectInfo, error)
	// Advice reviews the statements the object ran since its activation
	// and its schema (activating it if needed).
	Advice(ctx context.Context, class, name string) (AdviceResponse, error)
	// Explain plans one statement without running it.
	Explain(ctx context.Context, class, name string, stmt Statement) (ExplainResponse, error)
	DeleteObject(ctx context.Context, class, name string) error
	// Bookmark names the object's latest commit, or with at (unix ms,
	// not 0) its last commit at or before that time.
	Bookmark(ctx context.Context, class, name string, at int64) (BookmarkResponse, error)
	// Restore brings the object back to a bookmark or a time, as a new
	// commit.
	Restore(ctx context.Context, class, name string, req RestoreRequest) (RestoreResponse, error)
	Export(ctx context.Context, class, name string, w io.Writer) error
	Import(ctx context.Context, class, name string, r io.Reader) error
	ListObjects(ctx context.Context, class, cursor string, limit int) (ObjectList, error)
	Cluster(ctx context.Context) (ClusterInfo, error)
	Ready(ctx context.Context) error
}

// ClusterInternal is the node-to-node part of the API: Raft commands sent
// to the leader, partition handoff streams, and each node's share of a
// cluster-wide listing. The cluster implements it.
type ClusterInternal interface {
	// ApplyCommand commits a cluster command (JSON) if this node leads.
	ApplyCommand(ctx context.Context, cmd []byte) error
	// PartitionArchive writes partition p's objects as a tar stream, once
	// the partition is drained here, for the move of p to node to that
	// began at epoch since; with drain, only the end (to is an in-sync
	// replica).
	PartitionArchive(ctx context.Context, p int, to string, since uint64, drain bool, w io.Writer) error
	// PartitionSnapshot streams a page-identical copy of partition p to
	// its replica to, which follows p's records from then on.
	PartitionSnapshot(ctx context.Context, p int, to string, w http.ResponseWriter) error
	// AdmitReplica enters member, seeded from this node's copy of
	// partition p, into p's in-sync set, if it has every record shipped
	// since its snapshot began (CONFLICT if it missed one: it is seeded
	// again).
	AdmitReplica(ctx context.Context, p int, member string) error
	// ReceiveRecords takes a batch of records a primary shipped here and
	// answers how far each partition's are durable.
	ReceiveRecords(ctx context.Context, from string, batch []byte) (any, error)
	// LocalObjects lists the objects stored on this node after the raw
	// catalog key after.
	LocalObjects(ctx context.Context, class, after string, limit int) (ObjectList, error)
	// CommitIndex is the leader's Raft commit index (OWNER_UNAVAILABLE on
	// a follower): a restarted node serves only once it applied that far.
	CommitIndex(ctx context.Context) (uint64, error)
	// RemoveMember takes a (crashed) member out of the cluster for good;
	// its partitions are reassigned empty. Operators only.
	RemoveMember(ctx context.Context, name string) error
}

// AlarmEntry is one scheduled alarm of GET /v1/alarms; times are unix ms.
type AlarmEntry struct {
	ID        string `json:"id"`
	Class     string `json:"class"`
	Name      string `json:"name"`
	Partition int    `json:"partition"`
	At        int64  `json:"at"`        // when it fires next
	Scheduled int64  `json:"scheduled"` // the time SetAlarm asked for
	Retry     int    `json:"retry"`
}

// AlarmList is the answer of GET /v1/alarms.
type AlarmList struct {
	Alarms []AlarmEntry `json:"alarms"`
	Cursor string       `json:"cursor,omitempty"`
}

// Finding is one piece of the data-modelling advisor's advice.
type Finding struct {
	Rule       string           `json:"rule"`     // e.g. "missing-index"
	Severity   string           `json:"severity"` // "warning" or "info"
	Table      string           `json:"table"`
	Statement  string           `json:"statement"` // the statement's shape, "" for the schema
	Evidence   map[string]int64 `json:"evidence"`
	Suggestion string           `json:"suggestion"`
}

// AdviceResponse is the answer of GET .../advice.
type AdviceResponse struct {
	Findings []Finding `json:"findings"`
}

// BookmarkResponse is the answer of GET .../bookmark: an opaque name of
// one commit of the object (an object's bookmarks sort in commit order as
// strings) and the commit's time in unix ms.
type BookmarkResponse struct {
	Bookmark string `json:"bookmark"`
	At       int64  `json:"at"`
}

// RestoreRequest is the body of POST .../restore: a bookmark or a time
// (unix ms), not both.
type RestoreRequest struct {
	Bookmark string `json:"bookmark,omitempty"`
	At       *int64 `json:"at,omitempty"`
}

// RestoreResponse is the answer of POST .../restore: the bookmark the
// object was restored to and the one of its state just before (restoring
// to it undoes the restore).
type RestoreResponse struct {
	RestoredTo   string `json:"restored_to"`
	UndoBookmark string `json:"undo_bookmark"`
}

// PlanStep is one line of SQLite's EXPLAIN QUERY PLAN.
type PlanStep struct {
	ID     int64  `json:"id"`
	Parent int64  `json:"parent"`
	Detail string `json:"detail"`
}

// ExplainResponse is the answer of POST .../explain.
type ExplainResponse struct {
	Plan     []PlanStep `json:"plan"`
	Findings []Finding  `json:"findings"`
}

// AlarmLister is implemented by backends that list scheduled alarms.
type AlarmLister interface {
	// ListAlarms lists alarms due before beforeMillis (all if 0), by time
	// then object ID, after cursor.
	ListAlarms(ctx context.Context, beforeMillis int64, cursor string, limit int) (AlarmList, error)
}
