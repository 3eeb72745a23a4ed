package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
)

// The sharded workload: increments of a few sharded counters (class
// "sharded", examples/sharded.go), each of which adds to one of
// shardCount counter objects "{name}~{k}" through a stub, so every
// increment crosses from the entry node to the sharded object's node to
// the shard's. An increment's Arg is the amount, Arg2 the shard that
// took it and Result that shard's new value.
const (
	shardCount   = 8 // examples.ShardCount
	shardedNames = 3 // sharded counters per scenario
)

func shardedName(k int) string { return fmt.Sprintf("shd-%d", k) }

// shardObject is the counter object holding shard k of name.
func shardObject(name string, k int64) string { return name + "~" + strconv.FormatInt(k, 10) }

func (d *driver) shardedIncrement(r *rand.Rand, cl int) Op {
	obj := shardedName(r.IntN(shardedNames))
	by := r.Int64N(3) + 1
	var out struct {
		Shard int64 `json:"shard"`
		Value int64 `json:"value"`
	}
	op := d.exec(Op{Workload: Sharded, Kind: "incr", Object: obj, Client: cl, Arg: by}, d.pick(r), func(ctx context.Context, entry int) (served, error) {
		return d.callJSON(ctx, entry, "POST", "sharded", obj, "/increment?by="+strconv.FormatInt(by, 10), nil, &out)
	})
	if op.Outcome == OK {
		op.Arg2, op.Result = out.Shard, out.Value
	}
	d.h.Add(op)
	return op
}

// shardedFinal is one sharded counter as read at the end: each shard
// read directly from its counter object, and the sharded object's own
// answer (its shards and total, read through its stubs).
type shardedFinal struct {
	Shards     []int64 // direct reads of counter/{name}~{k}
	StubShards []int64
	StubTotal  int64
}

// readSharded reads every shard of name directly, then the sharded
// object's view of them; each read is one attempt (the caller retries).
func (d *driver) readSharded(ctx context.Context, name string, entry int) (shardedFinal, error) {
	var st shardedFinal
	for k := range int64(shardCount) {
		var out struct{ Value int64 }
		if _, err := d.callJSON(ctx, entry, "GET", "counter", shardObject(name, k), "/", nil, &out); err != nil {
			return st, fmt.Errorf("shard %s: %w", shardObject(name, k), err)
		}
		st.Shards = append(st.Shards, out.Value)
	}
	var out struct {
		Total  int64   `json:"total"`
		Shards []int64 `json:"shards"`
	}
	if _, err := d.callJSON(ctx, entry, "GET", "sharded", name, "/", nil, &out); err != nil {
		return st, fmt.Errorf("sharded %s: %w", name, err)
	}
	st.StubShards, st.StubTotal = out.Shards, out.Total
	return st, nil
}

// checkSharded: per shard, the value read at the end is at least the sum
// of the increments acknowledged on it and at most that plus every
// uncertain increment of its counter (an uncertain one does not say
// which shard it hit); no two acknowledged increments of one shard
// returned the same value (one state counted twice: two copies served
// it); each acknowledged value is above every one acknowledged on its
// shard before it was called; and the sharded object's total is the sum
// of the shards it reports, which are the shards read directly. A nil
// final means the history has no final reads: only the values are
// checked.
func checkSharded(ops []Op, final map[string]shardedFinal, f *Findings) {
	type shardKey struct {
		name  string
		shard int64
	}
	acked := map[shardKey][]Op{}
	ackedSum := map[shardKey]int64{}
	unknownSum := map[string]int64{}
	names := map[string]bool{}
	for _, op := range ops {
		if op.Kind != "incr" {
			continue
		}
		names[op.Object] = true
		switch op.Outcome {
		case OK:
			k := shardKey{op.Object, op.Arg2}
			acked[k] = append(acked[k], op)
			ackedSum[k] += op.Arg
		case Unknown:
			unknownSum[op.Object] += op.Arg
		}
	}
	keys := make([]shardKey, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].name < keys[j].name || keys[i].name == keys[j].name && keys[i].shard < keys[j].shard
	})
	for _, k := range keys {
		obj := shardObject(k.name, k.shard)
		seen := map[int64]Op{}
		for _, op := range acked[k] {
			if prev, dup := seen[op.Result]; dup {
				f.DoubleServing++
				f.evidence("shard %s acknowledged value %d twice: %s | %s", obj, op.Result, describe(prev), describe(op))
			}
			seen[op.Result] = op
		}
		shardOps := make([]Op, len(acked[k]))
		for i, op := range acked[k] {
			op.Object = obj
			shardOps[i] = op
		}
		checkCounterOrder(obj, shardOps, f)
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	if final == nil {
		return // no final reads (the part before a removal, disklost.go)
	}
	for _, name := range sorted {
		fin, ok := final[name]
		if !ok || len(fin.Shards) != shardCount {
			f.LostWrites++
			f.evidence("sharded %s: no final read of its shards", name)
			continue
		}
		for s := range int64(shardCount) {
			k := shardKey{name, s}
			got, want := fin.Shards[s], ackedSum[k]
			var highest Op
			for _, op := range acked[k] {
				if op.Result > highest.Result {
					highest = op
				}
			}
			switch {
			case got < want || got < highest.Result:
				lost := 0
				for _, op := range acked[k] {
					if op.Result > got {
						lost++
					}
				}
				f.LostWrites += max(lost, 1)
				f.evidence("shard %s is %d after the run, but %d was acknowledged to it (highest acknowledged value %d: %s)",
					shardObject(name, s), got, want, highest.Result, describe(highest))
			case got > want+unknownSum[name]:
				f.PhantomWrites++
				f.evidence("shard %s is %d, but only %d was acknowledged to it and %d to %s is uncertain",
					shardObject(name, s), got, want, unknownSum[name], name)
			}
		}
		var sum int64
		for _, v := range fin.StubShards {
			sum += v
		}
		if fin.StubTotal != sum || !equal(fin.StubShards, fin.Shards) {
			f.ShardedTotals++
			f.evidence("sharded %s answered total %d of shards %v; its shards read directly are %v", name, fin.StubTotal, fin.StubShards, fin.Shards)
		}
	}
}
