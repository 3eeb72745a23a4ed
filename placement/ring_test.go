package placement

import (
	"math"
	"testing"
)

func TestAssignIsDeterministicAndBounded(t *testing.T) {
	cfg := DefaultRingConfig()
	cases := []struct {
		name    string
		members []string
	}{
		{"one", []string{"n1"}},
		{"three", []string{"n1", "n2", "n3"}},
		{"five", []string{"a", "b", "c", "d", "e"}},
		{"duplicates", []string{"n1", "n2", "n1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Assign(tc.members, cfg)
			if len(got) != cfg.Partitions {
				t.Fatalf("%d partitions assigned", len(got))
			}
			reversed := make([]string, len(tc.members))
			for i, m := range tc.members {
				reversed[len(reversed)-1-i] = m
			}
			again := Assign(reversed, cfg)
			loads := map[string]int{}
			for p := range got {
				if got[p] != again[p] {
					t.Fatalf("partition %d: %s vs %s depending on member order", p, got[p], again[p])
				}
				loads[got[p]]++
			}
			distinct := map[string]bool{}
			for _, m := range tc.members {
				distinct[m] = true
			}
			bound := int(math.Ceil(float64(cfg.Partitions) / float64(len(distinct)) * cfg.Load))
			for m, n := range loads {
				if !distinct[m] || n > bound {
					t.Fatalf("member %q holds %d partitions (bound %d)", m, n, bound)
				}
			}
		})
	}
	if Assign(nil, cfg) != nil {
		t.Fatal("partitions assigned with no members")
	}
}

func TestAssignMovesFewPartitionsOnJoin(t *testing.T) {
	cfg := DefaultRingConfig()
	before := Assign([]string{"n1", "n2", "n3"}, cfg)
	after := Assign([]string{"n1", "n2", "n3", "n4"}, cfg)
	moved, toNew := 0, 0
	for p := range before {
		if before[p] != after[p] {
			moved++
			if after[p] == "n4" {
				toNew++
			}
		}
	}
	// Ideally a quarter moves, all to the newcomer; bounded loads shuffle
	// some more, but most partitions must stay where they are.
	if moved > cfg.Partitions/2 || toNew == 0 {
		t.Fatalf("%d of %d partitions moved on a join, %d to the new member", moved, cfg.Partitions, toNew)
	}
	t.Logf("join moved %d partitions, %d to the new member", moved, toNew)
}
