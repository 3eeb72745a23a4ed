package examples

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/objectstore"
)

// chatSchema is the guide's normalised multi-table pattern: messages point
// at users with a cascading foreign key (Dura opens every database with
// foreign keys on), plus the archive table of the archiving pattern.
const chatSchema = `
CREATE TABLE IF NOT EXISTS users (
	id TEXT PRIMARY KEY,
	username TEXT NOT NULL UNIQUE,
	joined_at INTEGER NOT NULL,
	last_active INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	text TEXT NOT NULL,
	timestamp INTEGER NOT NULL,
	FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_messages_timestamp ON messages(timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_messages_user ON messages(user_id, timestamp DESC);
CREATE TABLE IF NOT EXISTS messages_archive (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	text TEXT NOT NULL,
	timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_archive_timestamp ON messages_archive(timestamp DESC)`

const (
	// chatArchiveBatch bounds the messages one archive call moves.
	chatArchiveBatch = 1000
	// chatMaxTimestamp bounds client timestamps, so chatTop is after all.
	chatMaxTimestamp = 1 << 62
)

// chatTop is a cursor newer than every message: where the first page starts.
var chatTop = timeCursor{ts: chatMaxTimestamp, id: ""}

// Chat is a chat room: users, their messages and an archive.
//
//	POST   /users                {id,username}          -> 201 user
//	GET    /users/{id}                                  -> user
//	DELETE /users/{id}                                  -> {"deleted":true,"messages_deleted":n}
//	POST   /messages             {user_id,text[,timestamp]} -> 201 message (409 CONSTRAINT for an unknown user)
//	GET    /messages?limit=&cursor=&direction=older|newer -> {"messages","next_cursor","prev_cursor"}
//	GET    /users/{id}/messages?limit=&before=          -> {"messages"}
//	POST   /archive?older_than_ms=AGE                   -> {"archived":n,"more":bool}
//	GET    /archive?limit=                              -> {"messages"}
//
// Messages are listed newest first, ordered by (timestamp, id) so that
// messages sharing a timestamp still have one place in the order and a
// page boundary between them loses or repeats nothing. A cursor names the
// (timestamp, id) of a message; direction=older (the default) pages from
// it to older messages (next_cursor continues), direction=newer to newer
// ones (prev_cursor continues). "forward" and "backward", the first names,
// are still read as older and newer. older_than_ms is an age: messages
// whose timestamp is more than that many milliseconds before now.
type Chat struct {
	st *node.State
	r  *router
}

// NewChat is the constructor of class "chat".
func NewChat(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(chatSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chat schema: %w", err)
	}
	c := &Chat{st: st, r: newRouter()}
	c.r.handle("POST /users", c.addUser)
	c.r.handle("GET /users/{id}", c.getUser)
	c.r.handle("DELETE /users/{id}", c.deleteUser)
	c.r.handle("GET /users/{id}/messages", c.userMessages)
	c.r.handle("POST /messages", c.postMessage)
	c.r.handle("GET /messages", c.listMessages)
	c.r.handle("POST /archive", c.archive)
	c.r.handle("GET /archive", c.listArchive)
	return c, nil
}

// Fetch implements node.Object.
func (c *Chat) Fetch(w http.ResponseWriter, r *http.Request) error { return c.r.serve(w, r) }

type chatUser struct {
	ID         string `json:"id"`
	Username   string `json:"username"`
	JoinedAt   int64  `json:"joined_at"`
	LastActive int64  `json:"last_active"`
}

type chatMessage struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Username  string `json:"username,omitempty"`
	Text      string `json:"text"`
	Timestamp int64  `json:"timestamp"`
}

func (c *Chat) addUser(w http.ResponseWriter, r *http.Request) error {
	var u chatUser
	if err := readJSON(r, &u); err != nil {
		return err
	}
	if u.ID == "" {
		return missing("id")
	}
	if u.Username == "" {
		return missing("username")
	}
	u.JoinedAt = c.st.Now().UnixMilli()
	u.LastActive = u.JoinedAt
	// A taken id or username fails the UNIQUE constraint: 409 CONSTRAINT.
	_, err := c.st.Storage().Exec(`
		INSERT INTO users (id, username, joined_at, last_active) VALUES (?, ?, ?, ?)`,
		u.ID, u.Username, u.JoinedAt, u.LastActive)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, u)
}

func (c *Chat) getUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	cur, err := c.st.Storage().Exec(`
		SELECT id, username, joined_at, last_active FROM users WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if !cur.Next() {
		return fmt.Errorf("%w: no user %q", node.ErrNotFound, id)
	}
	var u chatUser
	if err := cur.Scan(&u.ID, &u.Username, &u.JoinedAt, &u.LastActive); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u)
}

func (c *Chat) deleteUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	cur, err := c.st.Storage().Exec(`DELETE FROM users WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if cur.Changes() == 0 {
		return fmt.Errorf("%w: no user %q", node.ErrNotFound, id)
	}
	// Changes counts the user row; RowsWritten also counts the messages
	// the ON DELETE CASCADE removed with it.
	return writeJSON(w, http.StatusOK, map[string]any{
		"deleted":          true,
		"messages_deleted": cur.RowsWritten() - cur.Changes(),
	})
}

func (c *Chat) postMessage(w http.ResponseWriter, r *http.Request) error {
	var m chatMessage
	if err := readJSON(r, &m); err != nil {
		return err
	}
	if m.UserID == "" {
		return missing("user_id")
	}
	if m.Text == "" {
		return missing("text")
	}
	if m.Timestamp < 0 || m.Timestamp >= chatMaxTimestamp {
		return fmt.Errorf("%w: timestamp must be unix milliseconds", node.ErrBadRequest)
	}
	now := c.st.Now().UnixMilli()
	if m.Timestamp == 0 {
		m.Timestamp = now
	}
	m.ID = newID()
	m.Username = ""
	s := c.st.Storage()
	// The foreign key is the existence check: an unknown user_id fails
	// with CONSTRAINT (409) and the event rolls back.
	if _, err := s.Exec(`INSERT INTO messages (id, user_id, text, timestamp) VALUES (?, ?, ?, ?)`,
		m.ID, m.UserID, m.Text, m.Timestamp); err != nil {
		return err
	}
	if _, err := s.Exec(`UPDATE users SET last_active = ? WHERE id = ?`, now, m.UserID); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, m)
}

// timeCursor is the position of one row in a (timestamp, id) order, as
// "<timestamp>_<id>": of a message here, of an event in analytics.
type timeCursor struct {
	ts int64
	id string
}

func (k timeCursor) String() string { return strconv.FormatInt(k.ts, 10) + "_" + k.id }

func parseTimeCursor(s string) (timeCursor, error) {
	ts, id, ok := strings.Cut(s, "_")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return timeCursor{}, fmt.Errorf("%w: malformed cursor %q", node.ErrBadRequest, s)
	}
	return timeCursor{ts: n, id: id}, nil
}

type chatPage struct {
	Messages   []chatMessage `json:"messages"`
	NextCursor *string       `json:"next_cursor"`
	PrevCursor *string       `json:"prev_cursor"`
}

// The page queries join users once instead of looking each author up
// (the guide's N+1 anti-pattern). They read limit+1 rows: the extra one
// only tells whether another page exists. The first page is chatOlder
// from chatTop: without a range on timestamp SQLite may pick another
// index and sort the whole table.
const (
	chatOlder = `
		SELECT m.id, m.user_id, u.username, m.text, m.timestamp
		FROM messages m JOIN users u ON u.id = m.user_id
		WHERE (m.timestamp, m.id) < (?, ?)
		ORDER BY m.timestamp DESC, m.id DESC LIMIT ?`
	chatNewer = `
		SELECT m.id, m.user_id, u.username, m.text, m.timestamp
		FROM messages m JOIN users u ON u.id = m.user_id
		WHERE (m.timestamp, m.id) > (?, ?)
		ORDER BY m.timestamp ASC, m.id ASC LIMIT ?`
)

func (c *Chat) listMessages(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	// backward: towards newer messages, against the newest-first order.
	backward := false
	switch d := q.Get("direction"); d {
	case "", "older", "forward":
	case "newer", "backward":
		backward = true
	default:
		return fmt.Errorf("%w: direction must be older or newer, got %q", node.ErrBadRequest, d)
	}
	at := chatTop
	hasCursor := q.Get("cursor") != ""
	if hasCursor {
		if at, err = parseTimeCursor(q.Get("cursor")); err != nil {
			return err
		}
	} else if backward {
		return fmt.Errorf("%w: direction=newer needs a cursor", node.ErrBadRequest)
	}
	query := chatOlder
	if backward {
		query = chatNewer
	}
	cur, err := c.st.Storage().Exec(query, at.ts, at.id, limit+1)
	if err != nil {
		return err
	}
	msgs, err := scanMessages(cur, true)
	if err != nil {
		return err
	}
	more := len(msgs) > limit // in the direction read
	if more {
		msgs = msgs[:limit]
	}
	if backward {
		slices.Reverse(msgs) // read oldest-first to take the nearest ones; shown newest-first
	}

	// next_cursor continues to older messages, prev_cursor to newer ones;
	// each is null when the room has nothing further that way.
	page := chatPage{Messages: msgs}
	// Past the cursor's side lies at least the cursor's own message.
	older := (!backward && more) || backward
	newer := (backward && more) || (!backward && hasCursor)
	switch {
	case len(msgs) > 0:
		if older {
			page.NextCursor = ptr(keyOf(msgs[len(msgs)-1]).String())
		}
		if newer {
			page.PrevCursor = ptr(keyOf(msgs[0]).String())
		}
	case hasCursor:
		// An empty page past the end still lets the client turn round.
		if backward {
			page.NextCursor = ptr(at.String())
		} else {
			page.PrevCursor = ptr(at.String())
		}
	}
	return writeJSON(w, http.StatusOK, page)
}

func keyOf(m chatMessage) timeCursor { return timeCursor{ts: m.Timestamp, id: m.ID} }

func ptr[T any](v T) *T { return &v }

func scanMessages(cur *objectstore.Cursor, withName bool) ([]chatMessage, error) {
	out := make([]chatMessage, 0, cur.Len())
	for cur.Next() {
		var m chatMessage
		var err error
		if withName {
			err = cur.Scan(&m.ID, &m.UserID, &m.Username, &m.Text, &m.Timestamp)
		} else {
			err = cur.Scan(&m.ID, &m.UserID, &m.Text, &m.Timestamp)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// userMessages lists one user's messages newest first; the composite
// index idx_messages_user(user_id, timestamp DESC) answers it without a
// sort. before= (a timestamp, exclusive) pages further back.
func (c *Chat) userMessages(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	before, err := queryInt(q, "before", chatMaxTimestamp, 0, chatMaxTimestamp)
	if err != nil {
		return err
	}
	cur, err := c.st.Storage().Exec(`
		SELECT id, user_id, text, timestamp FROM messages
		WHERE user_id = ? AND timestamp < ?
		ORDER BY timestamp DESC LIMIT ?`, r.PathValue("id"), before, limit)
	if err != nil {
		return err
	}
	msgs, err := scanMessages(cur, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

// archive moves messages older than older_than_ms (an age, relative to
// now) to messages_archive: the copy and the delete run in one
// transaction, so a message is never in both tables or in neither. One
// call moves at most chatArchiveBatch messages, oldest first; "more" says
// whether another call has work left.
func (c *Chat) archive(w http.ResponseWriter, r *http.Request) error {
	age, err := queryInt(r.URL.Query(), "older_than_ms", -1, 0, 1<<62)
	if err != nil {
		return err
	}
	if age < 0 {
		return missing("older_than_ms")
	}
	cutoff := c.st.Now().UnixMilli() - age
	s := c.st.Storage()
	var moved int64
	var more bool
	err = s.Transaction(func() error {
		// Both statements pick the same rows: the same query over the
		// same (timestamp, id) order, with nothing able to run between.
		ins, err := s.Exec(`
			INSERT INTO messages_archive (id, user_id, text, timestamp)
			SELECT id, user_id, text, timestamp FROM messages
			WHERE timestamp < ? ORDER BY timestamp, id LIMIT ?`, cutoff, chatArchiveBatch)
		if err != nil {
			return err
		}
		del, err := s.Exec(`
			DELETE FROM messages WHERE id IN (
				SELECT id FROM messages WHERE timestamp < ? ORDER BY timestamp, id LIMIT ?)`,
			cutoff, chatArchiveBatch)
		if err != nil {
			return err
		}
		if ins.Changes() != del.Changes() {
			return fmt.Errorf("%w: archived %d messages but deleted %d", node.ErrInternal, ins.Changes(), del.Changes())
		}
		moved = del.Changes()
		rest, err := s.Exec(`SELECT EXISTS (SELECT 1 FROM messages WHERE timestamp < ?)`, cutoff)
		if err != nil {
			return err
		}
		return rest.ScanOne(&more)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"archived": moved, "more": more})
}

func (c *Chat) listArchive(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		return err
	}
	cur, err := c.st.Storage().Exec(`
		SELECT id, user_id, text, timestamp FROM messages_archive
		ORDER BY timestamp DESC LIMIT ?`, limit)
	if err != nil {
		return err
	}
	msgs, err := scanMessages(cur, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}
