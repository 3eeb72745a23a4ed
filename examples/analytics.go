package examples

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/dura-dev/dura/node"
)

// analyticsSchema is the guide's denormalised pattern: each event carries
// a copy of its user's name and email, so reading events never joins.
//
// idx_user_type_timestamp is the guide's composite index for "events of
// one type by one user, newest first"; idx_events_user_timestamp serves
// the same without a type. One composite index per query shape, rather
// than one index per column that SQLite could not combine.
const analyticsSchema = `
CREATE TABLE IF NOT EXISTS events (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	user_name TEXT NOT NULL,
	user_email TEXT NOT NULL,
	event_type TEXT NOT NULL,
	timestamp INTEGER NOT NULL,
	data TEXT
);
CREATE INDEX IF NOT EXISTS idx_user_type_timestamp ON events(user_id, event_type, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_events_user_timestamp ON events(user_id, timestamp DESC)`

// analyticsMaxBatch bounds the events one POST may carry.
const analyticsMaxBatch = 100

// Analytics is an append-mostly event log.
//
//	POST /events  one event or an array of up to 100:
//	              {user_id,user_name,user_email,event_type[,id][,timestamp][,data:any JSON]}
//	              -> 201 {"events":[...]}
//	GET  /events?user_id=&event_type=&cursor=&limit=  -> {"events":[...],"next_cursor"} newest first
//	     (before=T, the older form, starts at timestamp T but cannot split
//	     events sharing one: page with next_cursor)
//	GET  /plan?user_id=&event_type=                   -> {"sql","plan":[...]} EXPLAIN QUERY PLAN of that read
//	GET  /stats?user_id=                              -> {"counts":{"type":n,...}}
type Analytics struct {
	st *node.State
	r  *router
}

// NewAnalytics is the constructor of class "analytics".
func NewAnalytics(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(analyticsSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("analytics schema: %w", err)
	}
	a := &Analytics{st: st, r: newRouter()}
	a.r.handle("POST /events", a.post)
	a.r.handle("GET /events", a.list)
	a.r.handle("GET /plan", a.plan)
	a.r.handle("GET /stats", a.stats)
	return a, nil
}

// Fetch implements node.Object.
func (a *Analytics) Fetch(w http.ResponseWriter, r *http.Request) error { return a.r.serve(w, r) }

type analyticsEvent struct {
	ID        string          `json:"id"`
	UserID    string          `json:"user_id"`
	UserName  string          `json:"user_name"`
	UserEmail string          `json:"user_email"`
	EventType string          `json:"event_type"`
	Timestamp int64           `json:"timestamp"`
	Data      json.RawMessage `json:"data,omitempty"`
}

func (e *analyticsEvent) validate() error {
	switch {
	case e.UserID == "":
		return missing("user_id")
	case e.UserName == "":
		return missing("user_name")
	case e.UserEmail == "":
		return missing("user_email")
	case e.EventType == "":
		return missing("event_type")
	case e.Timestamp < 0:
		return fmt.Errorf("%w: timestamp must not be negative", node.ErrBadRequest)
	}
	return nil
}

func (a *Analytics) post(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, maxJSONBody)
	if err != nil {
		return err
	}
	var events []analyticsEvent
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		err = json.Unmarshal(t, &events)
	} else {
		events = make([]analyticsEvent, 1)
		err = json.Unmarshal(t, &events[0])
	}
	if err != nil {
		return fmt.Errorf("%w: body must be an event or an array of events: %v", node.ErrBadRequest, err)
	}
	if len(events) == 0 || len(events) > analyticsMaxBatch {
		return fmt.Errorf("%w: send 1 to %d events, got %d", node.ErrBadRequest, analyticsMaxBatch, len(events))
	}
	now := a.st.Now().UnixMilli()
	s := a.st.Storage()
	// The whole batch is one event, hence one transaction: all of it is
	// stored or, if any event is refused, none.
	for i := range events {
		e := &events[i]
		if err := e.validate(); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if e.ID == "" {
			e.ID = newID()
		}
		if e.Timestamp == 0 {
			e.Timestamp = now
		}
		var data any // NULL when the event has no data
		if len(e.Data) > 0 && !bytes.Equal(e.Data, []byte("null")) {
			data = string(e.Data)
		}
		if _, err := s.Exec(`
			INSERT INTO events (id, user_id, user_name, user_email, event_type, timestamp, data)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.UserID, e.UserName, e.UserEmail, e.EventType, e.Timestamp, data); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"events": events})
}

// eventsQuery builds the read of GET /events, shared with GET /plan so the
// plan shown is the plan of the real query. Only the WHERE shape varies;
// every value is a bound parameter.
func eventsQuery(r *http.Request) (string, []any, error) {
	q := r.URL.Query()
	userID := q.Get("user_id")
	if userID == "" {
		return "", nil, missing("user_id")
	}
	limit, err := queryLimit(q)
	if err != nil {
		return "", nil, err
	}
	// A page starts after a (timestamp, id) cursor, so events sharing a
	// timestamp are split across pages without loss or repeat; before=T
	// is the cursor just above every event at T.
	before, err := queryInt(q, "before", 1<<62, 0, 1<<62)
	if err != nil {
		return "", nil, err
	}
	at := timeCursor{ts: before, id: ""}
	if c := q.Get("cursor"); c != "" {
		if q.Has("before") {
			return "", nil, fmt.Errorf("%w: give cursor or before, not both", node.ErrBadRequest)
		}
		if at, err = parseTimeCursor(c); err != nil {
			return "", nil, err
		}
	}
	where, args := "user_id = ?", []any{userID}
	if t := q.Get("event_type"); t != "" {
		where += " AND event_type = ?"
		args = append(args, t)
	}
	// limit+1 rows: the extra one only says whether there is a next page.
	args = append(args, at.ts, at.id, limit+1)
	return `SELECT id, user_id, user_name, user_email, event_type, timestamp, data
		FROM events WHERE ` + where + ` AND (timestamp, id) < (?, ?)
		ORDER BY timestamp DESC, id DESC LIMIT ?`, args, nil
}

func (a *Analytics) list(w http.ResponseWriter, r *http.Request) error {
	query, args, err := eventsQuery(r)
	if err != nil {
		return err
	}
	limit, _ := queryLimit(r.URL.Query()) // checked by eventsQuery
	cur, err := a.st.Storage().Exec(query, args...)
	if err != nil {
		return err
	}
	events := make([]analyticsEvent, 0, cur.Len())
	for cur.Next() {
		var e analyticsEvent
		var data any
		if err := cur.Scan(&e.ID, &e.UserID, &e.UserName, &e.UserEmail, &e.EventType, &e.Timestamp, &data); err != nil {
			return err
		}
		if s, ok := data.(string); ok {
			e.Data = json.RawMessage(s) // stored only after json.Unmarshal checked it
		}
		events = append(events, e)
	}
	// next_cursor continues after the last event shown; null at the end.
	var next *string
	if len(events) > limit {
		events = events[:limit]
		last := events[limit-1]
		next = ptr(timeCursor{ts: last.Timestamp, id: last.ID}.String())
	}
	return writeJSON(w, http.StatusOK, map[string]any{"events": events, "next_cursor": next})
}

// plan answers SQLite's EXPLAIN QUERY PLAN for the GET /events query, so
// a client (or a test) can see which index answers it.
func (a *Analytics) plan(w http.ResponseWriter, r *http.Request) error {
	query, args, err := eventsQuery(r)
	if err != nil {
		return err
	}
	cur, err := a.st.Storage().Exec("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return err
	}
	var steps []string
	for _, row := range cur.ToArray() {
		if d, ok := row["detail"].(string); ok {
			steps = append(steps, d)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sql": query, "plan": steps})
}

// stats counts a user's events by type. Grouping on the composite index's
// leading columns needs neither the table nor a sort.
func (a *Analytics) stats(w http.ResponseWriter, r *http.Request) error {
	userID := r.URL.Query().Get("user_id")
	if userID == "" {
		return missing("user_id")
	}
	cur, err := a.st.Storage().Exec(`
		SELECT event_type, COUNT(*) FROM events WHERE user_id = ?
		GROUP BY event_type ORDER BY event_type LIMIT ?`, userID, maxPage)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for cur.Next() {
		var t string
		var n int64
		if err := cur.Scan(&t, &n); err != nil {
			return err
		}
		counts[t] = n
	}
	return writeJSON(w, http.StatusOK, map[string]any{"user_id": userID, "counts": counts})
}
