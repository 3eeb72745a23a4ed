package examples

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/dura-dev/dura/node"
)

// counterSchema is the guide's single-table pattern. The index on
// updated_at serves "recently changed counters" queries run over /v1 SQL.
const counterSchema = `
CREATE TABLE IF NOT EXISTS counters (
	name TEXT PRIMARY KEY,
	value INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_counters_updated ON counters(updated_at DESC)`

// Counter keeps named integer counters, one row each.
//
//	POST /increment?key=K&by=N  -> {"key":K,"value":V}
//	GET  /?key=K                -> {"key":K,"value":V} (0 if never set)
type Counter struct {
	st *node.State
}

// NewCounter is the constructor of class "counter".
func NewCounter(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(counterSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counter schema: %w", err)
	}
	return &Counter{st: st}, nil
}

type counterValue struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// Fetch routes by hand rather than through a ServeMux: increment is the
// hot path of the benchmarks and has only two routes.
func (c *Counter) Fetch(w http.ResponseWriter, r *http.Request) error {
	switch {
	case r.URL.Path == "/increment" && r.Method == http.MethodPost:
		return c.increment(w, r)
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return c.get(w, r)
	}
	return noRoute(r)
}

func counterKey(r *http.Request) string {
	if k := r.URL.Query().Get("key"); k != "" {
		return k
	}
	return "default"
}

func (c *Counter) increment(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	key := counterKey(r)
	by := int64(1)
	if s := q.Get("by"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: by must be an integer, got %q", node.ErrBadRequest, s)
		}
		by = n
	}
	// One statement creates or bumps the row and returns the new value,
	// so an increment costs a single B-tree write and no read-back.
	cur, err := c.st.Storage().Exec(`
		INSERT INTO counters (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE
			SET value = value + excluded.value, updated_at = excluded.updated_at
		RETURNING value`, key, by, c.st.Now().UnixMilli())
	if err != nil {
		return err
	}
	var v any
	if err := cur.ScanOne(&v); err != nil {
		return err
	}
	// SQLite turns an overflowing integer sum into a REAL; refusing it
	// rolls the event back instead of storing a rounded count.
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("%w: adding %d would overflow counter %q", node.ErrBadRequest, by, key)
	}
	return writeJSON(w, http.StatusOK, counterValue{Key: key, Value: n})
}

func (c *Counter) get(w http.ResponseWriter, r *http.Request) error {
	key := counterKey(r)
	cur, err := c.st.Storage().Exec(`SELECT value FROM counters WHERE name = ?`, key)
	if err != nil {
		return err
	}
	var v int64 // a counter never incremented reads as 0
	if cur.Next() {
		if err := cur.Scan(&v); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, counterValue{Key: key, Value: v})
}
