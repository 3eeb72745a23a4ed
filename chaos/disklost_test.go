package chaos

import "testing"

// TestCheckDiskLoss: the wiped node owned counter "a" and shard "s~0";
// the removal was asked at 100 ms and answered at 120 ms.
func TestCheckDiskLoss(t *testing.T) {
	loss := &DiskLoss{Node: "n2", Objects: map[string]bool{"a": true, "s~0": true}, Owned: 2, RemoveAsked: ms(100), Removed: ms(120)}
	incr := func(obj string, v int64, out Outcome, from int) Op {
		return Op{Workload: Counters, Kind: "incr", Object: obj, Result: v, Outcome: out, Invoke: ms(from), Complete: ms(from + 5)}
	}
	shard := func(k, v int64, out Outcome, from int) Op {
		return Op{Workload: Sharded, Kind: "incr", Object: "s", Arg: 1, Arg2: k, Result: v, Outcome: out, Invoke: ms(from), Complete: ms(from + 5)}
	}
	refused := Op{Workload: Counters, Kind: "incr", Object: "a", Outcome: Fail, Err: "503 OWNER_UNAVAILABLE: partition 3's data is missing on node n2", Invoke: ms(60), Complete: ms(61)}
	// Before the wipe "a" reached 2 and shard 0 of "s" reached 2; after
	// the removal both start again from empty.
	base := []Op{incr("a", 1, OK, 0), incr("a", 2, OK, 10), refused, incr("a", 1, OK, 130), incr("b", 1, OK, 0), incr("b", 2, OK, 140),
		shard(0, 1, OK, 0), shard(0, 2, OK, 10), shard(1, 1, OK, 20), shard(0, 1, OK, 130)}
	final := finalState{Counters: map[string]int64{"a": 1, "b": 2}, Sharded: map[string]shardedFinal{"s": {
		Shards: []int64{1, 1, 0, 0, 0, 0, 0, 0}, StubShards: []int64{1, 1, 0, 0, 0, 0, 0, 0}, StubTotal: 2}}}
	cases := []struct {
		name                    string
		extra                   []Op
		loss                    *DiskLoss
		final                   func(finalState) finalState
		lost, double, lin, gone int
	}{
		{"lost objects restart empty after the removal", nil, loss, nil, 0, 0, 0, 2},
		// Without the disk loss the same history is broken: values
		// acknowledged twice, out of order, and lost.
		{"same history, no disk lost", nil, nil, nil, 2, 2, 2, 0},
		{"wiped object served empty before the removal", []Op{incr("a", 1, OK, 70)}, loss, nil, 0, 1, 1, 2},
		{"another object restarts empty", []Op{incr("b", 1, OK, 150)}, loss, func(f finalState) finalState { f.Counters["b"] = 1; return f }, 1, 1, 1, 2},
		{"a shard not on the wiped node restarts empty", []Op{shard(1, 1, OK, 150)}, loss, nil, 1, 1, 1, 2},
		// Called before the removal was asked and answered after it: it
		// may have landed on either side.
		{"acknowledged across the removal", []Op{incr("a", 2, OK, 95)}, loss, func(f finalState) finalState { f.Counters["a"] = 2; return f }, 0, 0, 0, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &History{ops: append(append([]Op(nil), base...), tc.extra...)}
			fin := finalState{Counters: map[string]int64{}, Sharded: final.Sharded}
			for k, v := range final.Counters {
				fin.Counters[k] = v
			}
			if tc.final != nil {
				fin = tc.final(fin)
			}
			var f Findings
			notes := checkDiskLoss(h, fin, []string{Counters, Sharded}, tc.loss, &f)
			if f.LostWrites != tc.lost || f.DoubleServing != tc.double || f.Linearizability != tc.lin || f.DiskLost != tc.gone || f.PhantomWrites != 0 {
				t.Fatalf("findings %+v", f)
			}
			if tc.loss != nil && len(notes) != 1 {
				t.Fatalf("notes %q", notes)
			}
		})
	}
}
