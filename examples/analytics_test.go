package examples_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
)

type analyticsEvent struct {
	ID        string          `json:"id"`
	UserID    string          `json:"user_id"`
	UserName  string          `json:"user_name"`
	UserEmail string          `json:"user_email"`
	EventType string          `json:"event_type"`
	Timestamp int64           `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func event(user, typ string, ts int64, data string) map[string]any {
	e := map[string]any{"user_id": user, "user_name": "Name " + user, "user_email": user + "@example.com",
		"event_type": typ, "timestamp": ts}
	if data != "" {
		e["data"] = json.RawMessage(data)
	}
	return e
}

func TestAnalytics(t *testing.T) {
	n := newNode(t)
	var one struct{ Events []analyticsEvent }
	n.call("POST", "analytics", "a", "/events", event("u1", "view", 100, `{"page":"/"}`), 201, &one)
	if len(one.Events) != 1 || one.Events[0].ID == "" {
		t.Fatalf("answer %+v", one)
	}
	n.call("POST", "analytics", "a", "/events", []any{
		event("u1", "click", 200, `{"x":1}`),
		event("u1", "click", 300, ""),
		event("u1", "view", 400, ""),
		event("u2", "click", 250, `[true]`),
	}, 201, nil)

	refused := []struct {
		name string
		body any
	}{
		{"missing email", map[string]any{"user_id": "u3", "user_name": "x", "event_type": "view"}},
		{"empty batch", []any{}},
		{"not JSON", "user_id=u3"},
		{"data not JSON", `{"user_id":"u3","user_name":"x","user_email":"e","event_type":"v","data":nope}`},
		{"one bad event fails the batch", []any{event("u3", "view", 1, ""), map[string]any{"user_id": "u3"}}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) { n.callErr("POST", "analytics", "a", "/events", c.body, 400, "BAD_REQUEST") })
	}
	if got := n.sqlInt("analytics", "a", `SELECT COUNT(*) FROM events WHERE user_id = 'u3'`); got != 0 {
		t.Fatalf("%d events stored from refused requests", got)
	}

	lists := []struct {
		name, query string
		want        []int64 // timestamps, newest first
	}{
		{"user and type", "user_id=u1&event_type=click", []int64{300, 200}},
		{"user, any type", "user_id=u1", []int64{400, 300, 200, 100}},
		{"limit", "user_id=u1&limit=2", []int64{400, 300}},
		{"before", "user_id=u1&before=300", []int64{200, 100}},
		{"other user", "user_id=u2&event_type=click", []int64{250}},
		{"nothing", "user_id=u1&event_type=purchase", nil},
	}
	for _, c := range lists {
		t.Run(c.name, func(t *testing.T) {
			var got struct{ Events []analyticsEvent }
			n.call("GET", "analytics", "a", "/events?"+c.query, nil, 200, &got)
			var ts []int64
			for _, e := range got.Events {
				ts = append(ts, e.Timestamp)
			}
			if len(ts) != len(c.want) {
				t.Fatalf("timestamps %v, want %v", ts, c.want)
			}
			for i := range ts {
				if ts[i] != c.want[i] {
					t.Fatalf("timestamps %v, want %v", ts, c.want)
				}
			}
		})
	}

	t.Run("denormalised fields and data come back", func(t *testing.T) {
		var got struct{ Events []analyticsEvent }
		n.call("GET", "analytics", "a", "/events?user_id=u1&event_type=click&limit=1&before=201", nil, 200, &got)
		e := got.Events[0]
		if e.UserName != "Name u1" || e.UserEmail != "u1@example.com" || string(e.Data) != `{"x":1}` {
			t.Fatalf("event %+v", e)
		}
	})

	t.Run("plan route shows the composite index", func(t *testing.T) {
		var got struct {
			SQL  string
			Plan []string
		}
		n.call("GET", "analytics", "a", "/plan?user_id=u1&event_type=click", nil, 200, &got)
		if !anyContains(got.Plan, "idx_user_type_timestamp") {
			t.Fatalf("plan %v", got.Plan)
		}
	})

	t.Run("EXPLAIN over the SQL route agrees", func(t *testing.T) {
		res := n.sql("analytics", "a", `EXPLAIN QUERY PLAN
			SELECT * FROM events WHERE user_id = ? AND event_type = ? ORDER BY timestamp DESC LIMIT 10`, "u1", "click")
		var steps []string
		for _, row := range res.Rows {
			steps = append(steps, row[len(row)-1].(string))
		}
		if !anyContains(steps, "USING INDEX idx_user_type_timestamp (user_id=? AND event_type=?)") || anyContains(steps, "TEMP B-TREE") {
			t.Fatalf("plan %v", steps)
		}
	})

	t.Run("stats", func(t *testing.T) {
		var got struct{ Counts map[string]int64 }
		n.call("GET", "analytics", "a", "/stats?user_id=u1", nil, 200, &got)
		if len(got.Counts) != 2 || got.Counts["click"] != 2 || got.Counts["view"] != 2 {
			t.Fatalf("counts %v", got.Counts)
		}
	})
	t.Run("user_id is required", func(t *testing.T) {
		n.callErr("GET", "analytics", "a", "/events?event_type=click", nil, 400, "BAD_REQUEST")
	})
	n.noAdviceWarnings("analytics", "a")
}

// TestAnalyticsPagesSplitEqualTimestamps: five events share a timestamp;
// paging two at a time with next_cursor returns each once, where paging
// with before= (the older form) would skip those past the first page.
func TestAnalyticsPagesSplitEqualTimestamps(t *testing.T) {
	n := newNode(t)
	var batch []any
	for i := range 5 {
		e := event("u", "view", 500, "")
		e["id"] = fmt.Sprint("e", i)
		batch = append(batch, e)
	}
	batch = append(batch, event("u", "view", 400, ""), event("u", "view", 600, ""))
	n.call("POST", "analytics", "p", "/events", batch, 201, nil)

	type page struct {
		Events     []analyticsEvent
		NextCursor *string `json:"next_cursor"`
	}
	seen := map[string]int{}
	var order []int64
	path := "/events?user_id=u&limit=2"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var p page
		n.call("GET", "analytics", "p", path, nil, 200, &p)
		for _, e := range p.Events {
			seen[e.ID]++
			order = append(order, e.Timestamp)
		}
		if p.NextCursor == nil {
			break
		}
		path = "/events?user_id=u&limit=2&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	if len(seen) != 7 || len(order) != 7 || !slices.IsSortedFunc(order, func(a, b int64) int { return cmp.Compare(b, a) }) {
		t.Fatalf("pages gave %v in order %v, want 7 events once each, newest first", seen, order)
	}
	n.callErr("GET", "analytics", "p", "/events?user_id=u&cursor=500_e3&before=1", nil, 400, "BAD_REQUEST")
	n.callErr("GET", "analytics", "p", "/events?user_id=u&cursor=nope", nil, 400, "BAD_REQUEST")
	// before= still answers: everything strictly older than its time.
	var p page
	n.call("GET", "analytics", "p", "/events?user_id=u&before=500", nil, 200, &p)
	if len(p.Events) != 1 || p.Events[0].Timestamp != 400 {
		t.Fatalf("before=500: %+v", p.Events)
	}
}
