package ts_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func event(user, typ string, ts int64, data string) map[string]any {
	e := map[string]any{"user_id": user, "user_name": "Name " + user, "user_email": user + "@example.com",
		"event_type": typ, "timestamp": ts}
	if data != "" {
		e["data"] = json.RawMessage(data)
	}
	return e
}

// TestAnalytics: the checks of examples.TestAnalytics on the guide's
// Analytics.
func TestAnalytics(t *testing.T) {
	n := startNode(t, "", "analytics")
	var one struct {
		Events []struct{ ID string }
	}
	n.call("POST", "Analytics", "a", "/events", event("u1", "view", 100, `{"page":"/"}`), 201, &one)
	if len(one.Events) != 1 || one.Events[0].ID == "" {
		t.Fatalf("answer %+v", one)
	}
	n.call("POST", "Analytics", "a", "/events", []any{
		event("u1", "click", 200, `{"x":1}`), event("u1", "click", 300, ""), event("u1", "view", 400, ""), event("u2", "click", 250, `[true]`),
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
		t.Run(c.name, func(t *testing.T) { n.callErr("POST", "Analytics", "a", "/events", c.body, 400, "BAD_REQUEST") })
	}
	if got := n.sqlInt("Analytics", "a", `SELECT COUNT(*) FROM events WHERE user_id = 'u3'`); got != 0 {
		t.Fatalf("%d events stored from refused requests", got)
	}
	lists := []struct {
		name, query string
		want        []int64
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
			var got struct {
				Events []struct {
					Timestamp int64
					Data      json.RawMessage
				}
			}
			n.call("GET", "Analytics", "a", "/events?"+c.query, nil, 200, &got)
			var ts []int64
			for _, e := range got.Events {
				ts = append(ts, e.Timestamp)
			}
			if !slices.Equal(ts, c.want) {
				t.Fatalf("timestamps %v, want %v", ts, c.want)
			}
		})
	}
	var stats struct{ Counts map[string]int }
	n.call("GET", "Analytics", "a", "/stats?user_id=u1", nil, 200, &stats)
	if !reflect.DeepEqual(stats.Counts, map[string]int{"view": 2, "click": 2}) {
		t.Fatalf("stats %v", stats.Counts)
	}
	n.callErr("GET", "Analytics", "a", "/events", nil, 400, "BAD_REQUEST")
	plan := n.plan("Analytics", "a", `SELECT * FROM events WHERE user_id = ? AND event_type = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT ?`, "u1", "click", 1<<52, 10)
	if !strings.Contains(plan, "idx_user_type_timestamp") {
		t.Fatalf("plan %v", plan)
	}
}
