package placement

import (
	"fmt"
	"math/rand"
	"os"
	"slices"
	"testing"
	"time"
)

// TestPlacementScale reports, for 3 to 1 000 members and 271 to 65 521
// partitions: how long Assign takes, how many partitions a join and a
// leave move (as a multiple of the ideal P/(N+1) and P/N), the most
// loaded member against the average, members left with nothing, and
// whether two nodes (members listed in another order) agree. Only with
// DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run PlacementScale -v ./placement
func TestPlacementScale(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	rng := rand.New(rand.NewSource(1))
	t.Logf("| partitions | members | Assign | moved per join (x ideal) | moved per leave (x ideal) | most loaded / average | own nothing |")
	t.Logf("|---|---|---|---|---|---|---|")
	for _, p := range []int{271, 4093, 65521} {
		cfg := DefaultRingConfig()
		cfg.Partitions = p
		for _, n := range []int{3, 30, 300, 1000} {
			members := make([]string, n+5)
			for i := range members {
				members[i] = fmt.Sprintf("node-%04d", i)
			}
			base := members[:n]
			if _, err := Assign(base, cfg); err != nil {
				t.Logf("| %d | %d | refused: at most %d members | | | | |", p, n, cfg.MaxMembers())
				continue
			}
			// Time: the best of a few runs (the machine is shared).
			var took time.Duration
			var owners []string
			for i := 0; i < 5; i++ {
				start := time.Now()
				owners = mustAssign(t, base, cfg)
				if d := time.Since(start); i == 0 || d < took {
					took = d
				}
			}
			// Another node, another order: the same owners.
			shuffled := slices.Clone(base)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if !slices.Equal(mustAssign(t, shuffled, cfg), owners) {
				t.Fatalf("%d members, %d partitions: placement depends on member order", n, p)
			}
			loads := map[string]int{}
			for _, o := range owners {
				loads[o]++
			}
			most := 0
			for _, l := range loads {
				most = max(most, l)
			}
			moved := func(a, b []string) int {
				c := 0
				for i := range a {
					if a[i] != b[i] {
						c++
					}
				}
				return c
			}
			// Five joins (each a different newcomer) and five leaves.
			var join, leave float64
			for k := 0; k < 5; k++ {
				joined := mustAssign(t, append(slices.Clone(base), members[n+k]), cfg)
				join += float64(moved(owners, joined)) / (float64(p) / float64(n+1))
				if n > 1 {
					gone := slices.Delete(slices.Clone(base), (k*7919)%n, (k*7919)%n+1)
					left := mustAssign(t, gone, cfg)
					leave += float64(moved(owners, left)) / (float64(p) / float64(n))
				}
			}
			t.Logf("| %d | %d | %s | %.2f | %.2f | %.2f | %d |", p, n, took.Round(10*time.Microsecond), join/5, leave/5,
				float64(most)/(float64(p)/float64(n)), n-len(loads))
		}
	}
}
