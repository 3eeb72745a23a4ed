package examples_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/examples/twins"
	"github.com/dura-dev/dura/node"
)

type counterValue = twins.CounterValue

func TestCounter(t *testing.T) {
	n := newNode(t)
	twins.Counter(t, n, "counter")

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
