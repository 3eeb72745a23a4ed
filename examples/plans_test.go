package examples

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// TestQueryPlans checks that the list queries built inside the package are
// answered from their index, without scanning or sorting a whole table.
func TestQueryPlans(t *testing.T) {
	cfg := node.DefaultConfig(t.TempDir())
	cfg.NodeName = "test"
	rt, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterAll(rt); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })

	eventsSQL := func(query string) (string, []any) {
		q, args, err := eventsQuery(httptest.NewRequest("GET", "/events?"+query, nil))
		if err != nil {
			t.Fatal(err)
		}
		return q, args
	}
	withType, withTypeArgs := eventsSQL("user_id=u&event_type=click")
	anyType, anyTypeArgs := eventsSQL("user_id=u")
	cases := []struct {
		name, class, sql string
		args             []any
		index            string
	}{
		{"chat first page", "chat", chatOlder, []any{chatTop.ts, chatTop.id, 11}, "idx_messages_timestamp"},
		{"chat older page", "chat", chatOlder, []any{5, "x", 11}, "idx_messages_timestamp"},
		{"chat newer page", "chat", chatNewer, []any{5, "x", 11}, "idx_messages_timestamp"},
		{"events of a type", "analytics", withType, withTypeArgs, "idx_user_type_timestamp"},
		{"events of any type", "analytics", anyType, anyTypeArgs, "idx_events_user_timestamp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := rt.SQL(ctx, c.class, "plans", []rpc.Statement{{SQL: "EXPLAIN QUERY PLAN " + c.sql, Params: c.args}})
			if err != nil {
				t.Fatal(err)
			}
			var steps []string
			for _, row := range res[0].Rows {
				steps = append(steps, fmt.Sprint(row[len(row)-1]))
			}
			plan := strings.Join(steps, "; ")
			// A temp B-tree for the last ORDER BY term only orders rows
			// that share a timestamp; one for the whole ORDER BY sorts
			// the table.
			if !strings.Contains(plan, c.index) || strings.Contains(plan, "SCAN") || strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") {
				t.Fatalf("plan %q, want a search of %s", plan, c.index)
			}
		})
	}
}
