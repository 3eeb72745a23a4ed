//go:build sqlite_fts5

package jsrt_test

import (
	"strings"
	"testing"
)

// TestFTS5ThroughTheAPI: a full-text search through /v1 SQL and through a
// JavaScript class's sql.exec, in a build with FTS5 (-tags sqlite_fts5).
func TestFTS5ThroughTheAPI(t *testing.T) {
	n := startJS(t, nodeOpts{})
	r := n.do("POST", "/v1/objects/db/s/sql", "application/json", `{"sql":"CREATE VIRTUAL TABLE d USING fts5(body); INSERT INTO d VALUES ('the quick brown fox'), ('a lazy dog'); SELECT highlight(d, 0, '[', ']') FROM d WHERE d MATCH 'quick' ORDER BY rank"}`)
	if !strings.Contains(r.String(), `"rows":[["the [quick] brown fox"]]`) {
		t.Fatalf("/v1 sql: %s", r)
	}
	n.deploy("search", `import { DurableObject } from "cloudflare:workers";
export class Search extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE VIRTUAL TABLE IF NOT EXISTS notes USING fts5(title, body)");
  }
  add(title, body) { this.ctx.storage.sql.exec("INSERT INTO notes (title, body) VALUES (?, ?)", title, body); }
  find(q) {
    return this.ctx.storage.sql.exec("SELECT title, bm25(notes) < 0 AS scored FROM notes WHERE notes MATCH ? ORDER BY rank", q).toArray();
  }
}`)
	n.call("Search", "x", "add", "Alarms", "one alarm per object")
	n.call("Search", "x", "add", "Storage", "every object owns a database; the database is SQLite")
	if r := n.call("Search", "x", "find", "database OR alarm*"); r.String() != `[{"title":"Alarms","scored":1},{"title":"Storage","scored":1}]` {
		t.Fatalf("find: %s", r)
	}
}
