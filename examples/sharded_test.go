package examples_test

import (
	"fmt"
	"testing"

	"github.com/dura-dev/dura/examples"
)

func TestSharded(t *testing.T) {
	n := newNode(t)
	type incr struct {
		Name  string
		Shard int
		Value int64
	}
	type read struct {
		Name   string
		Total  int64
		Shards []int64
	}
	var want [examples.ShardCount]int64
	var sum int64
	for i := range 40 {
		var got incr
		by := int64(i%3 + 1)
		n.call("POST", "sharded", "hot", fmt.Sprintf("/increment?by=%d", by), nil, 200, &got)
		if got.Name != "hot" || got.Shard < 0 || got.Shard >= examples.ShardCount {
			t.Fatalf("increment answered %+v", got)
		}
		want[got.Shard] += by
		sum += by
		if got.Value != want[got.Shard] {
			t.Fatalf("shard %d value %d, want %d", got.Shard, got.Value, want[got.Shard])
		}
	}
	var r read
	n.call("GET", "sharded", "hot", "/", nil, 200, &r)
	if r.Name != "hot" || r.Total != sum || len(r.Shards) != examples.ShardCount {
		t.Fatalf("read %+v, want total %d over %d shards", r, sum, examples.ShardCount)
	}
	for k, v := range r.Shards {
		if v != want[k] {
			t.Errorf("shard %d = %d, want %d", k, v, want[k])
		}
		// Each shard is a plain counter object, readable on its own.
		var c counterValue
		n.call("GET", "counter", examples.ShardName("hot", k), "/", nil, 200, &c)
		if c.Value != want[k] {
			t.Errorf("counter %s = %d, want %d", examples.ShardName("hot", k), c.Value, want[k])
		}
	}
	n.callErr("POST", "sharded", "hot", "/increment?by=x", nil, 400, "BAD_REQUEST")
	n.noAdviceWarnings("sharded", "hot")
}
