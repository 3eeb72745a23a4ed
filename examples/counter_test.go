package examples_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/node"
)

type counterValue struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

func TestCounter(t *testing.T) {
	n := newNode(t)
	steps := []struct {
		name, method, path string
		status             int
		want               counterValue
		code               string
	}{
		{"unset reads 0", "GET", "/", 200, counterValue{"default", 0}, ""},
		{"increment default by 1", "POST", "/increment", 200, counterValue{"default", 1}, ""},
		{"increment by 5", "POST", "/increment?by=5", 200, counterValue{"default", 6}, ""},
		{"other key, negative", "POST", "/increment?key=b&by=-2", 200, counterValue{"b", -2}, ""},
		{"read default", "GET", "/", 200, counterValue{"default", 6}, ""},
		{"read other", "GET", "/?key=b", 200, counterValue{"b", -2}, ""},
		{"empty key is default", "GET", "/?key=", 200, counterValue{"default", 6}, ""},
		{"by not an integer", "POST", "/increment?by=abc", 400, counterValue{}, "BAD_REQUEST"},
		{"by a fraction", "POST", "/increment?by=1.5", 400, counterValue{}, "BAD_REQUEST"},
		{"increment needs POST", "GET", "/increment", 404, counterValue{}, "NOT_FOUND"},
		{"unknown path", "POST", "/decrement", 404, counterValue{}, "NOT_FOUND"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != "" {
				n.callErr(s.method, "counter", "c1", s.path, nil, s.status, s.code)
				return
			}
			var got counterValue
			r := n.call(s.method, "counter", "c1", s.path, nil, s.status, &got)
			if got != s.want {
				t.Fatalf("got %+v, want %+v", got, s.want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}

	t.Run("schema", func(t *testing.T) {
		idx := n.sqlStrings("counter", "c1", `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'counters' AND name NOT LIKE 'sqlite_%'`)
		if len(idx) != 1 || idx[0] != "idx_counters_updated" {
			t.Fatalf("indexes %v", idx)
		}
		if n.sqlInt("counter", "c1", `SELECT COUNT(*) FROM counters WHERE updated_at > 0`) != 2 {
			t.Fatal("rows without updated_at")
		}
	})

	t.Run("overflow is refused and writes nothing", func(t *testing.T) {
		n.sql("counter", "c1", `UPDATE counters SET value = 9223372036854775807 WHERE name = 'b'`)
		n.callErr("POST", "counter", "c1", "/increment?key=b", nil, 400, "BAD_REQUEST")
		var got counterValue
		n.call("GET", "counter", "c1", "/?key=b", nil, 200, &got)
		if got.Value != 9223372036854775807 {
			t.Fatalf("value %d after a refused increment", got.Value)
		}
	})
	n.noAdviceWarnings("counter", "c1")
}

func TestCounterConcurrentIncrements(t *testing.T) {
	n := newNode(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if r := n.do("POST", "/objects/counter/shared/increment?key=hits", nil); r.status != 200 {
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}
		}()
	}
	wg.Wait()
	var got counterValue
	n.call("GET", "counter", "shared", "/?key=hits", nil, 200, &got)
	if got.Value != workers*each {
		t.Fatalf("value %d after %d increments", got.Value, workers*each)
	}
}

// BenchmarkCounterIncrement measures one increment event without HTTP.
func BenchmarkCounterIncrement(b *testing.B) {
	cfg := node.DefaultConfig(b.TempDir())
	cfg.NodeName = "bench"
	rt, err := node.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := examples.RegisterAll(rt); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/increment?by=1", nil)
		if err := rt.Call(ctx, "counter", "bench", w, r); err != nil {
			b.Fatal(err)
		}
	}
}
