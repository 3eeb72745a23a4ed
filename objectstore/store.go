package objectstore

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Config says where an object's database lives and how far it may grow.
type Config struct {
	// Path of the SQLite file; its directory is created if missing.
	Path string
	// MaxBytes caps the database size in bytes (pages in use and free);
	// a write past it fails with ErrStorageFull. 0 means DefaultMaxBytes.
	MaxBytes int64
	// StatementTimeout bounds one Exec call. 0 means DefaultStatementTimeout.
	StatementTimeout time.Duration
	// StatementCache is how many prepared statements the connection keeps.
	// 0 means 32.
	StatementCache int
	// Capture hands each commit's pages out as Records (TakeRecords) for
	// a node log, which then carries durability: SQLite runs with
	// synchronous=NORMAL (no fsync per commit) and checkpoints only when
	// told (Checkpoint), so frames stay in the WAL until captured.
	Capture bool
	// StatementShapes is how many statement shapes the store keeps
	// statistics for, for the advisor (Advice): about 200 bytes each plus
	// the statement's text. 0 means DefaultStatementShapes; -1 turns
	// statistics off (Advice then has only the schema to go on).
	StatementShapes int
	// StatsBudget, if set, bounds the memory of the statistics of every
	// store sharing it (a runtime's open objects).
	StatsBudget *StatsBudget
}

const (
	// DefaultMaxBytes is the per-object size limit when none is configured.
	DefaultMaxBytes = 1 << 30
	// DefaultStatementTimeout is the per-Exec time limit when none is configured.
	DefaultStatementTimeout = 5 * time.Second
)

// Validate reports a Config that cannot be opened.
func (c Config) Validate() error {
	if c.Path == "" {
		return fmt.Errorf("%w: empty database path", ErrBadRequest)
	}
	if c.MaxBytes < 0 || c.StatementTimeout < 0 || c.StatementCache < 0 || c.StatementShapes < -1 {
		return fmt.Errorf("%w: negative limit", ErrBadRequest)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.StatementCache == 0 {
		c.StatementCache = 32
	}
	if c.StatementShapes == 0 {
		c.StatementShapes = DefaultStatementShapes
	}
	return c
}

// Store is one object's open database. It is used by one event at a time
// and is not safe for concurrent use.
type Store struct {
	cfg  Config
	conn *sqlite3.SQLiteConn

	internal bool   // the store runs its own SQL: the sandbox lets it through
	denied   string // why the authorizer last refused, for the error message

	inEvent   bool
	savepoint []savepoint // open nested savepoints, innermost last
	spSeq     int

	// tag prefixes every internal statement. go-sqlite3 caches prepared
	// statements by their text and the authorizer only runs at prepare
	// time, so user SQL must never be able to repeat an internal text and
	// reuse its authorization: the tag is a random comment per store.
	tag string
	// aborted is the error after which SQLite rolled the whole event
	// transaction back (SQLITE_FULL, an interrupt); nothing more may run
	// in that event.
	aborted error

	totalChanges int64 // total_changes() after the last statement
	lastChanges  int64 // changes() after the last statement
	lastInsertID int64 // last_insert_rowid() after the last statement
	// countersStale is set when the store's own statements may have
	// written since the counters were read: the next user statement reads
	// them first, so bookkeeping rows never count as the caller's.
	countersStale bool
	// inserted is set once the event's own statements inserted a row:
	// last_insert_rowid() is the connection's, and an event that
	// inserted nothing reports 0, not an earlier event's row.
	inserted bool
	// Capture (see Config.Capture): the WAL tail, the transaction number,
	// whether _dura_tx is known to exist, whether the event wrote, and
	// the records committed and not yet taken.
	wal     *walTail
	tx      uint64
	txReady bool
	dirty   bool
	records []Record
	kvReady bool // _dura_kv is known to exist
	closed  bool
	stmts   []cachedStmt // prepared statements, most recently used last (prepared.go)

	stats *stmtStats // nil when statement statistics are off
}

// Open opens (creating if needed) the database at cfg.Path with WAL,
// synchronous=FULL and foreign keys on, and installs the sandbox.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("open object db: %w", err)
	}
	s := &Store{cfg: cfg, tag: "/* dura " + randomHex() + " */ "}
	if cfg.StatementShapes > 0 {
		s.stats = newStmtStats(cfg.StatementShapes, cfg.StatsBudget)
	}
	if err := s.connect(); err != nil {
		if s.stats != nil {
			s.stats.release()
		}
		return nil, err
	}
	return s, nil
}

// connect opens the store's connection with Dura's pragmas, the sandbox,
// the limits and (with Config.Capture) the WAL tail: at Open, and again
// when a parked store is unparked.
func (s *Store) connect() error {
	sync := "FULL"
	if s.cfg.Capture {
		sync = "NORMAL"
	}
	c, err := openConn(s.cfg.Path, "_journal_mode=WAL&_synchronous="+sync+"&_foreign_keys=1&_busy_timeout=5000&_stmt_cache_size=0")
	if err != nil {
		return fmt.Errorf("open object db: %w", classify(err))
	}
	if mathErr != nil {
		c.Close()
		return fmt.Errorf("open object db: %w", mathErr)
	}
	s.conn = c
	c.RegisterAuthorizer(s.authorize)
	applyLimits(c)
	err = s.applyMaxBytes()
	if err == nil {
		err = s.refreshChanges()
	}
	if err == nil && s.cfg.Capture {
		err = s.startCapture()
	}
	if err != nil {
		s.conn = nil
		c.Close()
		return err
	}
	return nil
}

func openConn(path, params string) (*sqlite3.SQLiteConn, error) {
	d := &sqlite3.SQLiteDriver{}
	c, err := d.Open("file:" + path + "?" + params)
	if err != nil {
		return nil, err
	}
	return c.(*sqlite3.SQLiteConn), nil
}

func (s *Store) applyMaxBytes() error {
	pageSize, err := s.pragmaInt("page_size")
	if err != nil {
		return err
	}
	pages := s.cfg.MaxBytes / pageSize
	if pages < 1 {
		pages = 1
	}
	return s.execInternal("PRAGMA max_page_count = " + strconv.FormatInt(pages, 10))
}

// Path is the database file. Safe for concurrent use.
func (s *Store) Path() string { return s.cfg.Path }

// Close rolls back an open event and closes the database. Closing twice is
// harmless.
func (s *Store) Close() error {
	if s.closed {
		return nil
	}
	if s.inEvent {
		_ = s.Rollback()
	}
	s.closed = true
	if s.stats != nil {
		s.stats.release()
	}
	s.finalizeAll()
	if s.conn == nil { // parked
		return nil
	}
	return s.conn.Close()
}

// Exec runs one or more ';'-separated statements; args bind to the last
// one. BEGIN, COMMIT/END and ROLLBACK become nested savepoints. The cursor
// holds the last statement's rows; RowsRead and RowsWritten add up all of
// them.
func (s *Store) Exec(query string, args ...any) (*Cursor, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.aborted != nil {
		return nil, s.abortedErr()
	}
	if len(query) > MaxStatementBytes {
		return nil, fmt.Errorf("%w: statement is %d bytes, the limit is %d", ErrTooLarge, len(query), MaxStatementBytes)
	}
	if strings.IndexByte(query, 0) >= 0 {
		// SQLite reads the text only up to a NUL, so "DELETE FROM t\x00
		// WHERE id = 1" would delete every row.
		return nil, fmt.Errorf("%w: the statement text holds a NUL byte", ErrBadRequest)
	}
	if len(args) > MaxParams {
		return nil, fmt.Errorf("%w: %d bound parameters, the limit is %d", ErrTooLarge, len(args), MaxParams)
	}
	named, err := bindArgs(args)
	if err != nil {
		return nil, err
	}
	stmts, err := splitStatements(query)
	if err != nil {
		return nil, err
	}
	if len(stmts) == 0 {
		return nil, fmt.Errorf("%w: empty query", ErrBadRequest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StatementTimeout)
	defer cancel()
	var total Cursor
	var cur *Cursor
	for i, stmt := range stmts {
		var a []driver.NamedValue
		if i == len(stmts)-1 {
			a = named
		}
		cur, err = s.execOne(ctx, stmt, a)
		if err != nil {
			if len(stmts) > 1 {
				return nil, fmt.Errorf("statement %d: %w", i+1, err)
			}
			return nil, err
		}
		total.rowsRead += cur.rowsRead
		total.rowsWritten += cur.rowsWritten
	}
	cur.rowsRead, cur.rowsWritten = total.rowsRead, total.rowsWritten
	return cur, nil
}

func (s *Store) execOne(ctx context.Context, stmt string, args []driver.NamedValue) (*Cursor, error) {
	switch classifyTx(stmt) {
	case txBegin:
		if _, err := s.pushSavepoint(true); err != nil {
			return nil, err
		}
		return &Cursor{}, nil
	case txCommit, txRollback:
		n := len(s.savepoint)
		if n == 0 || !s.savepoint[n-1].explicit {
			return nil, fmt.Errorf("%w: cannot %s - no transaction is active", ErrSQL, firstWord(stmt))
		}
		if err := s.popTo(n, s.savepoint[n-1].name, classifyTx(stmt) == txRollback); err != nil {
			return nil, err
		}
		return &Cursor{}, nil
	}
	s.denied = ""
	if err := refuseByText(stmt); err != nil {
		return nil, err
	}
	if strings.EqualFold(firstWord(stmt), "ROLLBACK") {
		s.kvReady = false // ROLLBACK TO may undo the KV table's creation
	}
	if s.countersStale {
		if err := s.refreshChanges(); err != nil {
			return nil, err
		}
	}
	defer s.settleNoOp(s.noteWrite(stmt))
	var start time.Time
	if s.stats != nil {
		start = time.Now()
	}
	rows, err := s.query(ctx, stmt, args)
	if err != nil {
		return nil, s.noteAbort(s.userErr(ctx, err))
	}
	cur := &Cursor{cols: rows.Columns()}
	dest := make([]driver.Value, len(cur.cols))
	size := 0
	for {
		err = rows.Next(dest)
		if err == io.EOF {
			break
		}
		if err != nil {
			rows.Close()
			return nil, s.noteAbort(s.userErr(ctx, err))
		}
		row := make([]any, len(dest))
		for i, v := range dest {
			row[i] = fromDriver(v)
			size += valueSize(row[i])
		}
		if size > MaxResultBytes {
			rows.Close()
			return nil, fmt.Errorf("%w: the result is over %d bytes; select fewer rows or columns (LIMIT)", ErrTooLarge, MaxResultBytes)
		}
		cur.rows = append(cur.rows, row)
	}
	if err := rows.Close(); err != nil {
		return nil, s.noteAbort(s.userErr(ctx, err))
	}
	cur.rowsRead = int64(len(cur.rows))
	before, beforeID := s.totalChanges, s.lastInsertID
	if err := s.refreshChanges(); err != nil {
		return nil, err
	}
	cur.rowsWritten = s.totalChanges - before
	if cur.rowsWritten > 0 {
		cur.changes = s.lastChanges
		if w := strings.ToUpper(firstWord(stmt)); w == "INSERT" || w == "REPLACE" {
			s.inserted = true
		}
	}
	if s.lastInsertID != beforeID {
		s.inserted = true
	}
	if s.inserted {
		cur.lastInsertID = s.lastInsertID
	}
	if s.stats != nil {
		s.stats.record(stmt, cur.rowsRead, cur.rowsWritten, time.Since(start))
	}
	return cur, nil
}

// isTxControl reports whether the store's own statement q only opens or
// closes a transaction or savepoint, so it changes no counter.
func isTxControl(q string) bool {
	switch strings.ToUpper(firstWord(q)) {
	case "BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE":
		return true
	}
	return false
}

func firstWord(stmt string) string {
	for i, r := range stmt {
		if r == ' ' || r == '\t' || r == '\n' || r == ';' {
			return stmt[:i]
		}
	}
	return stmt
}

func (s *Store) userErr(ctx context.Context, err error) error {
	if s.denied != "" {
		return fmt.Errorf("%w: %s", ErrNotAuthorized, s.denied)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: statement ran longer than %s", ErrTimeout, s.cfg.StatementTimeout)
	}
	// A reserved table that does not exist yet fails before the authorizer
	// sees it; the answer must not depend on whether it exists.
	if _, name, ok := strings.Cut(err.Error(), "no such table: "); ok {
		name = strings.TrimPrefix(name, "main.")
		if isReserved(name) {
			return fmt.Errorf("%w: names beginning %s are reserved", ErrNotAuthorized, ReservedPrefix)
		}
	}
	return classify(err)
}

// noteWrite marks the event as a write if stmt may write, before it
// runs. A CREATE ... IF NOT EXISTS or DROP ... IF EXISTS is decided after
// it ran instead (settleNoOp with the schema version returned here; -1
// for every other statement): it changes nothing when what it creates
// exists already or what it drops does not, and an object's constructor
// typically creates its tables that way on every activation, while a
// write needs what a read does not (room in the log, enough in-sync
// replicas). SQLite knows whether the transaction wrote
// (sqlite3_txn_state), but go-sqlite3 does not expose it.
func (s *Store) noteWrite(stmt string) int64 {
	if readOnly(stmt) || s.dirty {
		return -1
	}
	if s.inEvent && maybeNoOpSchema(stmt) {
		if v, err := s.schemaVersion(); err == nil {
			return v
		}
	}
	s.dirty = true
	return -1
}

// maybeNoOpSchema reports whether stmt is one CREATE or DROP statement
// with IF [NOT] EXISTS.
func maybeNoOpSchema(stmt string) bool {
	switch strings.ToUpper(firstWord(strings.TrimLeft(stmt, " \t\n\r\f"))) {
	case "CREATE", "DROP":
	default:
		return false
	}
	words := strings.Fields(strings.ToUpper(stmt[:min(len(stmt), 80)]))
	return len(words) >= 4 && slices.Contains(words[1:min(len(words), 6)], "IF") &&
		!strings.Contains(strings.TrimRight(stmt, "; \t\n\r\f"), ";")
}

// settleNoOp marks the event as a write unless the schema version is
// still before (see noteWrite).
func (s *Store) settleNoOp(before int64) {
	if before < 0 {
		return
	}
	if v, err := s.schemaVersion(); err != nil || v != before {
		s.dirty = true
	}
}

// schemaVersion reads the schema cookie, which every change of the
// schema in the open transaction moves on.
func (s *Store) schemaVersion() (int64, error) {
	var v [1]driver.Value
	if err := s.internalRow("PRAGMA schema_version", v[:]); err != nil {
		return 0, err
	}
	n, _ := v[0].(int64)
	return n, nil
}

// internalRow reads the one row of an internal query, with neither the
// counters nor the event's write mark touched.
func (s *Store) internalRow(q string, dest []driver.Value) error {
	internal := s.internal
	s.internal = true
	defer func() { s.internal = internal }()
	rows, err := s.query(context.Background(), s.tag+q, nil)
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	if err := rows.Next(dest); err != nil {
		return classify(err)
	}
	return nil
}

// refreshChanges reads the connection's change counters after a statement.
func (s *Store) refreshChanges() error {
	var v [3]driver.Value
	if err := s.internalRow("SELECT changes(), last_insert_rowid(), total_changes()", v[:]); err != nil {
		return err
	}
	s.lastChanges, s.lastInsertID, s.totalChanges = v[0].(int64), v[1].(int64), v[2].(int64)
	s.countersStale = false
	return nil
}

// execInternal runs the store's own SQL past the sandbox.
func (s *Store) execInternal(q string, args ...any) error {
	_, err := s.queryInternal(q, args...)
	return err
}

// queryInternal runs the store's own statements (possibly several, the
// last taking args) past the sandbox and returns the last one's rows.
func (s *Store) queryInternal(q string, args ...any) ([][]any, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.aborted != nil {
		return nil, s.abortedErr()
	}
	named, err := bindArgs(args)
	if err != nil {
		return nil, err
	}
	s.internal = true
	defer func() { s.internal = false }()
	if !isTxControl(q) {
		s.countersStale = true
		defer s.settleNoOp(s.noteWrite(q))
	}
	stmts := []string{q}
	if strings.IndexByte(q, ';') >= 0 {
		if stmts, err = splitStatements(q); err != nil {
			return nil, err
		}
	}
	var out [][]any
	for i, stmt := range stmts {
		var a []driver.NamedValue
		if i == len(stmts)-1 {
			a = named
		}
		rows, err := s.query(context.Background(), s.tag+stmt, a)
		if err != nil {
			return nil, s.noteAbort(classify(err))
		}
		out = out[:0]
		dest := make([]driver.Value, len(rows.Columns()))
		for {
			err = rows.Next(dest)
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return nil, s.noteAbort(classify(err))
			}
			row := make([]any, len(dest))
			for i, v := range dest {
				row[i] = fromDriver(v)
			}
			out = append(out, row)
		}
		if err := rows.Close(); err != nil {
			return nil, s.noteAbort(classify(err))
		}
	}
	return out, nil
}

func (s *Store) pragmaInt(name string) (int64, error) {
	rows, err := s.queryInternal("PRAGMA " + name)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("%w: PRAGMA %s returned %d rows", ErrSQL, name, len(rows))
	}
	v, ok := rows[0][0].(int64)
	if !ok {
		return 0, fmt.Errorf("%w: PRAGMA %s returned %T", ErrSQL, name, rows[0][0])
	}
	return v, nil
}

// DatabaseSize is the bytes of pages in use: (page_count - freelist_count)
// * page_size.
func (s *Store) DatabaseSize() (int64, error) {
	pc, err := s.pragmaInt("page_count")
	if err != nil {
		return 0, err
	}
	fl, err := s.pragmaInt("freelist_count")
	if err != nil {
		return 0, err
	}
	ps, err := s.pragmaInt("page_size")
	if err != nil {
		return 0, err
	}
	return (pc - fl) * ps, nil
}

// SchemaVersion is the highest version recorded in _dura_schema_version,
// 0 if none.
func (s *Store) SchemaVersion() (int, error) {
	rows, err := s.queryInternal("SELECT name FROM sqlite_master WHERE type='table' AND name='_dura_schema_version'")
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	rows, err = s.queryInternal("SELECT COALESCE(MAX(version), 0) FROM _dura_schema_version")
	if err != nil {
		return 0, err
	}
	return int(rows[0][0].(int64)), nil
}

// RecordSchemaVersion notes that migration v was applied at time at.
func (s *Store) RecordSchemaVersion(v int, at time.Time) error {
	return s.execInternal(`CREATE TABLE IF NOT EXISTS _dura_schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
		INSERT INTO _dura_schema_version (version, applied_at) VALUES (?, ?)`, v, at.UnixMilli())
}

// DeleteAll removes every table, view, trigger and index and all KV
// entries, in the current transaction, so it is atomic with the event.
// TEMP objects go too. Every trigger goes first: dropping a parent table
// deletes its rows, and a trigger fired by that cascade would run its body
// with the store's own rights.
func (s *Store) DeleteAll() error {
	rows, err := s.queryInternal(`SELECT type, schema, name FROM (
		SELECT type, 'main' AS schema, name FROM sqlite_master
		WHERE type IN ('table','view','trigger') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT IN ('_dura_object', '_dura_tx')
		UNION ALL SELECT type, 'temp', name FROM sqlite_temp_master
		WHERE type IN ('table','view','trigger') AND name NOT LIKE 'sqlite\_%' ESCAPE '\')
		ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 ELSE 2 END`)
	if err != nil {
		return err
	}
	// Dropping a parent table deletes its rows first; deferring foreign
	// keys lets the children go in any order within the transaction.
	if err := s.execInternal("PRAGMA defer_foreign_keys = ON"); err != nil {
		return err
	}
	for _, r := range rows {
		typ, schema, name := r[0].(string), r[1].(string), r[2].(string)
		if err := s.execInternal("DROP " + typ + " IF EXISTS " + schema + "." + quoteIdent(name)); err != nil {
			return err
		}
	}
	s.kvReady = false
	rows, err = s.queryInternal("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
	if err == nil && len(rows) > 0 {
		err = s.execInternal("DELETE FROM sqlite_sequence")
	}
	return err
}

var errUnsupported = errors.New("unsupported parameter type")

func randomHex() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}
