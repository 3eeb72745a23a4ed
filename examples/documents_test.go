package examples_test

import "testing"

type document struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	Version int64  `json:"version"`
}

func TestDocumentsOptimisticLocking(t *testing.T) {
	n := newNode(t)
	put := func(content string, version int64) map[string]any {
		return map[string]any{"content": content, "version": version}
	}
	steps := []struct {
		name, method, path string
		body               any
		status             int
		code               string
		want               document // checked on success
	}{
		{"missing document", "GET", "/docs/d1", nil, 404, "NOT_FOUND", document{}},
		{"create with version 0", "PUT", "/docs/d1", put("v1 text", 0), 201, "", document{"d1", "v1 text", 1}},
		{"create again", "PUT", "/docs/d1", put("other", 0), 409, "CONSTRAINT", document{}},
		{"update from the version read", "PUT", "/docs/d1", put("v2 text", 1), 200, "", document{"d1", "v2 text", 2}},
		{"update from a stale version", "PUT", "/docs/d1", put("lost update", 1), 409, "CONSTRAINT", document{}},
		{"update from a future version", "PUT", "/docs/d1", put("?", 7), 409, "CONSTRAINT", document{}},
		{"read the winner", "GET", "/docs/d1", nil, 200, "", document{"d1", "v2 text", 2}},
		{"update a missing document", "PUT", "/docs/d2", put("x", 3), 404, "NOT_FOUND", document{}},
		{"version missing", "PUT", "/docs/d1", map[string]any{"content": "x"}, 400, "BAD_REQUEST", document{}},
		{"content missing", "PUT", "/docs/d1", map[string]any{"version": 2}, 400, "BAD_REQUEST", document{}},
		{"negative version", "PUT", "/docs/d1", put("x", -1), 400, "BAD_REQUEST", document{}},
		{"empty content is content", "PUT", "/docs/d1", put("", 2), 200, "", document{"d1", "", 3}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != "" {
				n.callErr(s.method, "documents", "docs", s.path, s.body, s.status, s.code)
				return
			}
			var got document
			n.call(s.method, "documents", "docs", s.path, s.body, s.status, &got)
			if got != s.want {
				t.Fatalf("got %+v, want %+v", got, s.want)
			}
		})
	}
	if v := n.sqlInt("documents", "docs", `SELECT version FROM documents WHERE id = 'd1'`); v != 3 {
		t.Fatalf("stored version %d", v)
	}
	n.noAdviceWarnings("documents", "docs")
}
