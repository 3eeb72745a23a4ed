package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/replication/nodedb"
)

// Config configures a Runtime.
type Config struct {
	// NodeName names this node in responses and logs.
	NodeName string
	// HTTPAddr is the address clients reach this node at, for /v1/cluster.
	HTTPAddr string
	// DataDir holds partitions/<p>/<id>.db and the node log (log/).
	DataDir string
	// NodeLog makes one log the node's durability: every commit's pages
	// are appended to <data>/log with group commit (one fsync for all the
	// events that arrived meanwhile) before its response is released, and
	// objects' SQLite files sync only at checkpoints; after a crash the
	// log brings every object forward. Off, each commit fsyncs its own
	// object's WAL (synchronous=FULL). Default on.
	NodeLog bool
	// PITRRetention keeps every commit of every object this node holds
	// (primary or replica) restorable for this long: the node log's
	// records are archived into <data>/history with snapshots. 0 turns
	// it off; it needs NodeLog. Default 720h.
	PITRRetention time.Duration
	// IdleTimeout closes an object's database after this long without an
	// event. Default 5 minutes.
	IdleTimeout time.Duration
	// ReleaseAfter makes an object idle this long give back its SQLite
	// connection's prepared statements and cached pages; it stays open
	// and active (its in-memory state kept) and its next event prepares
	// and reads them again. 0 turns it off. Default 10 s.
	ReleaseAfter time.Duration
	// MaxOpenFiles caps the files held by open object databases (each holds
	// up to FilesPerObject); the least recently used idle objects park
	// their databases (closed; the object stays live, its in-memory state
	// kept, and its next event opens the file again) to stay under it.
	// Default 3072.
	MaxOpenFiles int
	// MaxObjects caps the live objects, open or parked; past it the least
	// recently used idle ones are evicted (in-memory state lost). Default
	// DefaultMaxObjects; 0 means the default.
	MaxObjects int
	// MaxObjectBytes is the per-object database size limit. Default 1 GiB.
	MaxObjectBytes int64
	// StatementTimeout bounds one SQL call. Default 5 s.
	StatementTimeout time.Duration
	// Partitions is the partition count. Default 271.
	Partitions int
	// StatementStatsBytes bounds the memory of the advisor's statement
	// statistics across every open object; an object over it keeps
	// statistics by replacing its own least recently run statements.
	// Default 64 MiB.
	StatementStatsBytes int64
	// AlarmConcurrency bounds alarms running at once. Default 64.
	AlarmConcurrency int
	// Schedule stores alarms; nil opens a LocalSchedule in DataDir.
	Schedule AlarmSchedule
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the runtime's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// FilesPerObject is how many file descriptors one open object database
// holds: the database, its -wal and its -shm.
const FilesPerObject = 3

// DefaultMaxObjects is the live objects a node keeps by default: a
// parked object costs a few KiB of Go memory (a JavaScript one ~11 KiB of
// heap, ~26 KiB of RSS), so 20 000 of them fit in well under 1 GiB beside
// the open databases.
const DefaultMaxObjects = 20000

// DefaultConfig returns the defaults for a node whose data is in dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		NodeName:            "dura-1",
		DataDir:             dataDir,
		IdleTimeout:         5 * time.Minute,
		ReleaseAfter:        10 * time.Second,
		MaxOpenFiles:        3072,
		MaxObjects:          DefaultMaxObjects,
		MaxObjectBytes:      1 << 30,
		StatementTimeout:    5 * time.Second,
		Partitions:          placement.DefaultPartitions,
		AlarmConcurrency:    64,
		StatementStatsBytes: 64 << 20,
		NodeLog:             true,
		PITRRetention:       720 * time.Hour,
	}
}

// Validate reports a Config the runtime cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("idle timeout %s must be positive", c.IdleTimeout))
	}
	if c.ReleaseAfter < 0 {
		errs = append(errs, fmt.Errorf("release after %s must not be negative", c.ReleaseAfter))
	}
	if c.MaxOpenFiles < FilesPerObject {
		errs = append(errs, fmt.Errorf("max open files %d must be at least %d", c.MaxOpenFiles, FilesPerObject))
	}
	if c.MaxObjects < 0 {
		errs = append(errs, fmt.Errorf("max objects %d must not be negative", c.MaxObjects))
	}
	if c.MaxObjectBytes < 64*1024 {
		errs = append(errs, fmt.Errorf("max object bytes %d must be at least 64 KiB", c.MaxObjectBytes))
	}
	if c.StatementTimeout <= 0 {
		errs = append(errs, fmt.Errorf("statement timeout %s must be positive", c.StatementTimeout))
	}
	if c.Partitions <= 0 {
		errs = append(errs, fmt.Errorf("partitions %d must be positive", c.Partitions))
	}
	if c.AlarmConcurrency <= 0 {
		errs = append(errs, fmt.Errorf("alarm concurrency %d must be positive", c.AlarmConcurrency))
	}
	return errors.Join(errs...)
}

// AlarmSchedule is where alarms are kept. A change must be durable when
// PutAlarm or DeleteAlarm returns. All methods are safe to call
// concurrently. nodedb.LocalSchedule implements it.
type AlarmSchedule interface {
	PutAlarm(a nodedb.Alarm) error
	DeleteAlarm(id string) error
	GetAlarm(id string) (nodedb.Alarm, bool, error)
	Alarms() ([]nodedb.Alarm, error)
}

// firedClearer is a schedule that clears alarms that ran in batches: the
// alarm of object id that was due at at goes, shortly, unless it was set
// again meanwhile. It returns at once.
type firedClearer interface {
	ClearFired(id string, at time.Time)
}
