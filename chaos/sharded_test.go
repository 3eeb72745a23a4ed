package chaos

import "testing"

func TestCheckSharded(t *testing.T) {
	// incr adds by to shard of "s", called at from ms and answered at
	// from+5 with the shard's new value v.
	incr := func(by, shard, v int64, out Outcome, from int) Op {
		op := Op{Kind: "incr", Object: "s", Arg: by, Outcome: out, Invoke: ms(from), Complete: ms(from + 5)}
		if out == OK {
			op.Arg2, op.Result = shard, v
		}
		return op
	}
	// fin is the final state: shards as given, the stub's view agreeing.
	fin := func(shards ...int64) shardedFinal {
		st := shardedFinal{Shards: make([]int64, shardCount), StubShards: make([]int64, shardCount)}
		copy(st.Shards, shards)
		copy(st.StubShards, shards)
		for _, v := range shards {
			st.StubTotal += v
		}
		return st
	}
	good := []Op{incr(2, 0, 2, OK, 0), incr(1, 1, 1, OK, 10), incr(3, 0, 5, OK, 20), incr(1, 0, 0, Fail, 30), incr(2, 0, 0, Unknown, 40)}
	cases := []struct {
		name                              string
		ops                               []Op
		final                             shardedFinal
		lost, phantom, double, lin, total int
	}{
		{"clean, uncertain increment applied", good, fin(7, 1), 0, 0, 0, 0, 0},
		{"clean, uncertain increment not applied", good, fin(5, 1), 0, 0, 0, 0, 0},
		{"uncertain increment on another shard", good, fin(5, 3), 0, 0, 0, 0, 0},
		{"concurrent increments answer in any order", []Op{incr(1, 0, 2, OK, 0), incr(1, 0, 1, OK, 2)}, fin(2), 0, 0, 0, 0, 0},
		{"acknowledged increment lost", good, fin(2, 1), 1, 0, 0, 0, 0},
		{"shard read empty", good, fin(0, 1), 2, 0, 0, 0, 0},
		// Two copies of shard 0 each added 2 to the same 3.
		{"value acknowledged twice", []Op{incr(3, 0, 3, OK, 0), incr(2, 0, 5, OK, 10), incr(2, 0, 5, OK, 12)}, fin(7), 0, 0, 1, 0, 0},
		{"refused increment applied", []Op{incr(1, 0, 1, OK, 0), incr(4, 0, 0, Fail, 10)}, fin(5), 0, 1, 0, 0, 0},
		{"stale shard after an acknowledged one", []Op{incr(1, 0, 1, OK, 0), incr(1, 0, 2, OK, 10), incr(5, 2, 5, Unknown, 20), incr(1, 0, 2, OK, 30)}, fin(3), 0, 0, 1, 1, 0},
		{"stale shard hidden by a larger step", []Op{incr(3, 0, 3, OK, 0), incr(3, 0, 6, OK, 10), incr(1, 0, 4, OK, 20)}, fin(7), 0, 0, 0, 1, 0},
		{"total is not the sum of shards", good, func() shardedFinal { st := fin(5, 1); st.StubTotal = 5; return st }(), 0, 0, 0, 0, 1},
		{"stub sees other shards than a direct read", good, func() shardedFinal { st := fin(5, 1); st.StubShards[1], st.StubTotal = 0, 5; return st }(), 0, 0, 0, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f Findings
			checkSharded(tc.ops, map[string]shardedFinal{"s": tc.final}, &f)
			if f.LostWrites != tc.lost || f.PhantomWrites != tc.phantom || f.DoubleServing != tc.double || f.Linearizability != tc.lin || f.ShardedTotals != tc.total {
				t.Fatalf("findings %+v", f)
			}
			if bad := tc.lost+tc.phantom+tc.double+tc.lin+tc.total > 0; f.Failed() != bad {
				t.Fatalf("Failed() = %v, want %v", f.Failed(), bad)
			}
		})
	}
	t.Run("no final read", func(t *testing.T) {
		var f Findings
		checkSharded(good, map[string]shardedFinal{}, &f)
		if f.LostWrites != 1 {
			t.Fatalf("findings %+v", f)
		}
	})
}
