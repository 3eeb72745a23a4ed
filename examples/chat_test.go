package examples_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

type chatMessage struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Username  string `json:"username"`
	Text      string `json:"text"`
	Timestamp int64  `json:"timestamp"`
}

type chatPage struct {
	Messages   []chatMessage `json:"messages"`
	NextCursor *string       `json:"next_cursor"`
	PrevCursor *string       `json:"prev_cursor"`
}

func addChatUsers(n *testNode, room string, ids ...string) {
	n.t.Helper()
	for _, id := range ids {
		n.call("POST", "chat", room, "/users", map[string]string{"id": id, "username": "name-" + id}, 201, nil)
	}
}

func postChat(n *testNode, room, user, text string, ts int64) chatMessage {
	n.t.Helper()
	var m chatMessage
	n.call("POST", "chat", room, "/messages", map[string]any{"user_id": user, "text": text, "timestamp": ts}, 201, &m)
	return m
}

func TestChatUsersAndMessages(t *testing.T) {
	n := newNode(t)
	addChatUsers(n, "r", "u1", "u2")
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"duplicate user id", "POST", "/users", map[string]string{"id": "u1", "username": "other"}, 409, "CONSTRAINT"},
		{"duplicate username", "POST", "/users", map[string]string{"id": "u9", "username": "name-u1"}, 409, "CONSTRAINT"},
		{"user without username", "POST", "/users", map[string]string{"id": "u9"}, 400, "BAD_REQUEST"},
		{"user body not JSON", "POST", "/users", "id=u9", 400, "BAD_REQUEST"},
		{"message from unknown user", "POST", "/messages", map[string]string{"user_id": "ghost", "text": "boo"}, 409, "CONSTRAINT"},
		{"message without text", "POST", "/messages", map[string]string{"user_id": "u1"}, 400, "BAD_REQUEST"},
		{"unknown user", "GET", "/users/ghost", nil, 404, "NOT_FOUND"},
		{"delete unknown user", "DELETE", "/users/ghost", nil, 404, "NOT_FOUND"},
		{"bad direction", "GET", "/messages?direction=up", nil, 400, "BAD_REQUEST"},
		{"backward without cursor", "GET", "/messages?direction=backward", nil, 400, "BAD_REQUEST"},
		{"newer without cursor", "GET", "/messages?direction=newer", nil, 400, "BAD_REQUEST"},
		{"bad cursor", "GET", "/messages?cursor=xyz", nil, 400, "BAD_REQUEST"},
		{"limit too large", "GET", "/messages?limit=1000", nil, 400, "BAD_REQUEST"},
		{"archive without age", "POST", "/archive", nil, 400, "BAD_REQUEST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { n.callErr(c.method, "chat", "r", c.path, c.body, c.status, c.code) })
	}
	if got := n.sqlInt("chat", "r", `SELECT COUNT(*) FROM messages`); got != 0 {
		t.Fatalf("%d messages stored by refused requests", got)
	}

	for i := range 3 {
		postChat(n, "r", "u1", fmt.Sprint("hi ", i), int64(1000+i))
	}
	postChat(n, "r", "u2", "yo", 1500)
	postChat(n, "r", "u2", "now", 0) // the server stamps it

	t.Run("user's messages use the composite index", func(t *testing.T) {
		var got chatPage
		n.call("GET", "chat", "r", "/users/u1/messages?limit=2", nil, 200, &got)
		if len(got.Messages) != 2 || got.Messages[0].Text != "hi 2" || got.Messages[1].Text != "hi 1" {
			t.Fatalf("messages %+v", got.Messages)
		}
		detail := n.sql("chat", "r", `EXPLAIN QUERY PLAN SELECT id, user_id, text, timestamp FROM messages
			WHERE user_id = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT ?`, "u1", 1<<62, 2)
		var steps []string
		for _, row := range detail.Rows {
			steps = append(steps, fmt.Sprint(row[len(row)-1]))
		}
		if !anyContains(steps, "idx_messages_user") || anyContains(steps, "TEMP B-TREE") {
			t.Fatalf("plan %v", steps)
		}
	})

	t.Run("messages carry the username", func(t *testing.T) {
		var got chatPage
		n.call("GET", "chat", "r", "/messages", nil, 200, &got)
		if len(got.Messages) != 5 || got.Messages[0].Text != "now" || got.Messages[0].Username != "name-u2" {
			t.Fatalf("messages %+v", got.Messages)
		}
	})

	t.Run("deleting a user cascades to their messages", func(t *testing.T) {
		var got map[string]any
		n.call("DELETE", "chat", "r", "/users/u2", nil, 200, &got)
		if got["messages_deleted"] != float64(2) {
			t.Fatalf("answer %v", got)
		}
		if c := n.sqlInt("chat", "r", `SELECT COUNT(*) FROM messages WHERE user_id = 'u2'`); c != 0 {
			t.Fatalf("%d messages of a deleted user left", c)
		}
		if c := n.sqlInt("chat", "r", `SELECT COUNT(*) FROM messages`); c != 3 {
			t.Fatalf("%d messages left, want 3", c)
		}
	})
	n.noAdviceWarnings("chat", "r")
}

// TestChatPagination walks the room both ways with a page size that cuts
// through groups of messages sharing a timestamp.
func TestChatPagination(t *testing.T) {
	n := newNode(t)
	addChatUsers(n, "p", "a", "b")
	var all []chatMessage
	for i, ts := range []int64{1000, 1000, 1000, 2000, 3000, 3000, 4000} {
		all = append(all, postChat(n, "p", []string{"a", "b"}[i%2], fmt.Sprint("m", i), ts))
	}
	// The expected order: newest first, ties by id descending.
	slices.SortFunc(all, func(x, y chatMessage) int {
		if x.Timestamp != y.Timestamp {
			return int(y.Timestamp - x.Timestamp)
		}
		return strings.Compare(y.ID, x.ID)
	})
	ids := func(ms []chatMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}

	for _, limit := range []int{1, 2, 3, 7, 50} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			// direction=older|newer; odd limits use the first names,
			// forward|backward, which must keep working.
			older, newer := "older", "newer"
			if limit%2 == 1 {
				older, newer = "forward", "backward"
			}
			var pages []chatPage
			path := fmt.Sprintf("/messages?limit=%d", limit)
			for {
				var p chatPage
				n.call("GET", "chat", "p", path, nil, 200, &p)
				pages = append(pages, p)
				if len(pages) > 10 {
					t.Fatal("pagination does not end")
				}
				if p.NextCursor == nil {
					break
				}
				path = fmt.Sprintf("/messages?limit=%d&direction=%s&cursor=%s", limit, older, url.QueryEscape(*p.NextCursor))
			}
			var forward []chatMessage
			for _, p := range pages {
				forward = append(forward, p.Messages...)
			}
			if !slices.Equal(ids(forward), ids(all)) {
				t.Fatalf("forward walk %v, want %v", ids(forward), ids(all))
			}
			if pages[0].PrevCursor != nil {
				t.Fatalf("first page has prev_cursor %q", *pages[0].PrevCursor)
			}

			// Walk back from the last page: each page must be the one
			// before it, and the walk must end at the first page.
			last := pages[len(pages)-1]
			cursor := last.PrevCursor
			for i := len(pages) - 2; i >= 0; i-- {
				if cursor == nil {
					t.Fatalf("no prev_cursor before page %d", i)
				}
				var p chatPage
				n.call("GET", "chat", "p", fmt.Sprintf("/messages?limit=%d&direction=%s&cursor=%s", limit, newer, url.QueryEscape(*cursor)), nil, 200, &p)
				if !slices.Equal(ids(p.Messages), ids(pages[i].Messages)) {
					t.Fatalf("backward page %d: %v, want %v", i, ids(p.Messages), ids(pages[i].Messages))
				}
				if p.NextCursor == nil {
					t.Fatalf("backward page %d has no next_cursor", i)
				}
				cursor = p.PrevCursor
			}
			if cursor != nil {
				t.Fatalf("backward walk goes past the newest message: %q", *cursor)
			}
		})
	}

	t.Run("past the end", func(t *testing.T) {
		oldest := all[len(all)-1]
		cursor := fmt.Sprintf("%d_%s", oldest.Timestamp, oldest.ID)
		var p chatPage
		n.call("GET", "chat", "p", "/messages?cursor="+url.QueryEscape(cursor), nil, 200, &p)
		if len(p.Messages) != 0 || p.NextCursor != nil || p.PrevCursor == nil || *p.PrevCursor != cursor {
			t.Fatalf("page %+v", p)
		}
	})
}

func TestChatArchive(t *testing.T) {
	n := newNode(t)
	addChatUsers(n, "arc", "u")
	old := time.Now().Add(-3 * time.Hour).UnixMilli()
	for i := range 3 {
		postChat(n, "arc", "u", fmt.Sprint("old ", i), old+int64(i))
	}
	postChat(n, "arc", "u", "new 1", 0)
	postChat(n, "arc", "u", "new 2", 0)

	var res map[string]any
	n.call("POST", "chat", "arc", "/archive?older_than_ms=3600000", nil, 200, &res)
	if res["archived"] != float64(3) || res["more"] != false {
		t.Fatalf("archive answered %v", res)
	}
	var live, archived chatPage
	n.call("GET", "chat", "arc", "/messages", nil, 200, &live)
	n.call("GET", "chat", "arc", "/archive?limit=10", nil, 200, &archived)
	if len(live.Messages) != 2 || len(archived.Messages) != 3 || archived.Messages[0].Text != "old 2" {
		t.Fatalf("live %+v, archived %+v", live.Messages, archived.Messages)
	}
	if got := n.sqlInt("chat", "arc", `SELECT COUNT(*) FROM messages_archive a JOIN messages m USING (id)`); got != 0 {
		t.Fatalf("%d messages in both tables", got)
	}
	// Nothing else is old enough: a second run moves nothing.
	n.call("POST", "chat", "arc", "/archive?older_than_ms=3600000", nil, 200, &res)
	if res["archived"] != float64(0) {
		t.Fatalf("second archive answered %v", res)
	}
}
