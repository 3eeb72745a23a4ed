package ts_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
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

func postChat(n *tsNode, room, user, text string, ts int64) chatMessage {
	n.t.Helper()
	var m chatMessage
	n.call("POST", "ChatRoom", room, "/messages", map[string]any{"user_id": user, "text": text, "timestamp": ts}, 201, &m)
	return m
}

// TestChatUsersAndMessages: the checks of examples.TestChatUsersAndMessages
// that the guide's ChatRoom shares with the Go class.
func TestChatUsersAndMessages(t *testing.T) {
	n := startNode(t, "", "chat")
	for _, id := range []string{"u1", "u2"} {
		n.call("POST", "ChatRoom", "r", "/users", map[string]string{"id": id, "username": "name-" + id}, 201, nil)
	}
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
		{"bad cursor", "GET", "/messages?cursor=xyz", nil, 400, "BAD_REQUEST"},
		{"limit too large", "GET", "/messages?limit=1000", nil, 400, "BAD_REQUEST"},
		{"archive without age", "POST", "/archive", nil, 400, "BAD_REQUEST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { n.callErr(c.method, "ChatRoom", "r", c.path, c.body, c.status, c.code) })
	}
	if got := n.sqlInt("ChatRoom", "r", `SELECT COUNT(*) FROM messages`); got != 0 {
		t.Fatalf("%d messages stored by refused requests", got)
	}
	for i := range 3 {
		postChat(n, "r", "u1", fmt.Sprint("hi ", i), int64(1000+i))
	}
	postChat(n, "r", "u2", "yo", 1500)
	postChat(n, "r", "u2", "now", 0) // the server stamps it

	t.Run("user's messages use the composite index", func(t *testing.T) {
		var got chatPage
		n.call("GET", "ChatRoom", "r", "/users/u1/messages?limit=2", nil, 200, &got)
		if len(got.Messages) != 2 || got.Messages[0].Text != "hi 2" || got.Messages[1].Text != "hi 1" {
			t.Fatalf("messages %+v", got.Messages)
		}
		plan := n.plan("ChatRoom", "r", `SELECT id, user_id, text, timestamp FROM messages
			WHERE user_id = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT ?`, "u1", 1<<52, 2)
		if !strings.Contains(plan, "idx_messages_user") || strings.Contains(plan, "TEMP B-TREE") {
			t.Fatalf("plan %v", plan)
		}
	})
	t.Run("messages carry the username", func(t *testing.T) {
		var got chatPage
		n.call("GET", "ChatRoom", "r", "/messages", nil, 200, &got)
		if len(got.Messages) != 5 || got.Messages[0].Text != "now" || got.Messages[0].Username != "name-u2" {
			t.Fatalf("messages %+v", got.Messages)
		}
	})
	t.Run("deleting a user cascades to their messages", func(t *testing.T) {
		var got map[string]any
		n.call("DELETE", "ChatRoom", "r", "/users/u2", nil, 200, &got)
		if got["messages_deleted"] != float64(2) {
			t.Fatalf("answer %v", got)
		}
		if c := n.sqlInt("ChatRoom", "r", `SELECT COUNT(*) FROM messages`); c != 3 {
			t.Fatalf("%d messages left, want 3", c)
		}
	})
	t.Run("archive", func(t *testing.T) {
		var got struct{ Archived int }
		n.call("POST", "ChatRoom", "r", "/archive?older_than_days=1", nil, 200, &got)
		if got.Archived != 3 || n.sqlInt("ChatRoom", "r", `SELECT COUNT(*) FROM messages_archive`) != 3 {
			t.Fatalf("archived %d", got.Archived)
		}
	})
}

// TestChatPagination walks the room both ways with the guide's cursors
// (distinct timestamps: the guide's cursor is the timestamp alone).
func TestChatPagination(t *testing.T) {
	n := startNode(t, "", "chat")
	n.call("POST", "ChatRoom", "p", "/users", map[string]string{"id": "a", "username": "A"}, 201, nil)
	var want []string
	for i := range 7 {
		want = append([]string{postChat(n, "p", "a", fmt.Sprint("m", i), int64(1000*(i+1))).ID}, want...)
	}
	ids := func(ms []chatMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	for _, limit := range []int{1, 2, 3, 7, 50} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var pages []chatPage
			path := fmt.Sprintf("/messages?limit=%d", limit)
			for len(pages) < 10 {
				var p chatPage
				n.call("GET", "ChatRoom", "p", path, nil, 200, &p)
				pages = append(pages, p)
				if p.NextCursor == nil {
					break
				}
				path = fmt.Sprintf("/messages?limit=%d&direction=forward&cursor=%s", limit, *p.NextCursor)
			}
			var all []chatMessage
			for _, p := range pages {
				all = append(all, p.Messages...)
			}
			if !slices.Equal(ids(all), want) {
				t.Fatalf("forward walk %v, want %v", ids(all), want)
			}
			if len(pages) > 1 {
				var back chatPage
				n.call("GET", "ChatRoom", "p", fmt.Sprintf("/messages?limit=%d&direction=backward&cursor=%s", limit, *pages[1].PrevCursor), nil, 200, &back)
				if !slices.Equal(ids(back.Messages), ids(pages[0].Messages)) {
					t.Fatalf("backward page %v, want %v", ids(back.Messages), ids(pages[0].Messages))
				}
			}
			var recent struct {
				Messages   []chatMessage `json:"messages"`
				NextCursor *int64        `json:"next_cursor"`
			}
			n.call("GET", "ChatRoom", "p", fmt.Sprintf("/recent?limit=%d", limit), nil, 200, &recent)
			if !slices.Equal(ids(recent.Messages), want[:min(limit, 7)]) || (recent.NextCursor != nil) != (limit < 7) {
				t.Fatalf("recent %v %v", ids(recent.Messages), recent.NextCursor)
			}
		})
	}
}
