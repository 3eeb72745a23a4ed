package placement

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/buraksezer/consistent"
)

func mustAssign(t testing.TB, members []string, cfg RingConfig) []string {
	t.Helper()
	got, err := Assign(members, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

type libMember string

func (m libMember) String() string { return string(m) }

// libAssign is placement as buraksezer/consistent v0.10.0 computed it for
// every cluster before Assign had its own ring; a panic is an error.
func libAssign(members []string, cfg RingConfig) (out []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("library panicked: %v", r)
		}
	}()
	seen := map[string]bool{}
	var ms []consistent.Member
	for _, m := range members {
		if !seen[m] {
			seen[m] = true
			ms = append(ms, libMember(m))
		}
	}
	ring := consistent.New(ms, consistent.Config{PartitionCount: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor, Load: cfg.Load, Hasher: Hasher{}})
	out = make([]string, cfg.Partitions)
	for p := range out {
		out[p] = ring.GetPartitionOwner(p).String()
	}
	return out, nil
}

// TestAssignMatchesLibrary: existing clusters were placed by the library;
// on upgrade not one partition may move, and where the library panicked
// Assign refuses.
func TestAssignMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	type ringCase struct {
		cfg     RingConfig
		members []int
	}
	cases := []ringCase{
		{DefaultRingConfig(), []int{1, 2, 3, 4, 5, 7, 10, 30, 100, 135, 136, 200, 270, 271, 272, 300}},
		{RingConfig{Partitions: 7, ReplicationFactor: 1, Load: 1}, []int{1, 2, 3, 6, 7, 8}},
		{RingConfig{Partitions: 13, ReplicationFactor: 2, Load: 1}, []int{1, 2, 3, 4, 5, 12, 13, 14}},
		{RingConfig{Partitions: 4093, ReplicationFactor: 20, Load: 1.25}, []int{3, 41, 300}},
		{RingConfig{Partitions: 1009, ReplicationFactor: 5, Load: 1.1}, []int{2, 9, 50, 500, 1009, 1010}},
	}
	if !testing.Short() {
		cases = append(cases, ringCase{RingConfig{Partitions: 65521, ReplicationFactor: 20, Load: 1.25}, []int{3, 100}})
	}
	for _, tc := range cases {
		for _, n := range tc.members {
			t.Run(fmt.Sprintf("%dp_%dr_%gl_%dm", tc.cfg.Partitions, tc.cfg.ReplicationFactor, tc.cfg.Load, n), func(t *testing.T) {
				members := make([]string, n)
				for i := range members {
					// Names of several shapes; some end in digits, so
					// "n1"+"10" and "n11"+"0" share a virtual node key.
					switch i % 3 {
					case 0:
						members[i] = fmt.Sprintf("n%d", i)
					case 1:
						members[i] = fmt.Sprintf("node-%d.example", rng.Intn(1<<30))
					default:
						members[i] = strings.Repeat("x", 1+rng.Intn(5)) + fmt.Sprint(i)
					}
				}
				want, werr := libAssign(members, tc.cfg)
				rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
				got, err := Assign(members, tc.cfg)
				if (werr != nil) != (err != nil) {
					t.Fatalf("library: %v; Assign: %v", werr, err)
				}
				if err != nil {
					if !errors.Is(err, ErrTooManyMembers) {
						t.Fatalf("refusal %v is not ErrTooManyMembers", err)
					}
					return
				}
				for p := range want {
					if got[p] != want[p] {
						t.Fatalf("partition %d: Assign gives %s, the library %s", p, got[p], want[p])
					}
				}
			})
		}
	}
}

// TestAssignRefusesMoreMembersThanRoom: the library panicked here and took
// every node down; Assign says what to do instead.
func TestAssignRefusesMoreMembersThanRoom(t *testing.T) {
	cfg := DefaultRingConfig()
	members := make([]string, cfg.Partitions+1)
	for i := range members {
		members[i] = fmt.Sprint("n", i)
	}
	if cfg.MaxMembers() != cfg.Partitions {
		t.Fatalf("MaxMembers = %d, want %d", cfg.MaxMembers(), cfg.Partitions)
	}
	if _, err := Assign(members[:cfg.Partitions], cfg); err != nil {
		t.Fatalf("%d members: %v", cfg.Partitions, err)
	}
	got, err := Assign(members, cfg)
	if got != nil || !errors.Is(err, ErrTooManyMembers) {
		t.Fatalf("272 members: %v, %v", len(got), err)
	}
	for _, want := range []string{"271 partitions", "at most 271 members", "--partitions 27211"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if err := cfg.CheckMembers(len(members)); !errors.Is(err, ErrTooManyMembers) {
		t.Fatalf("CheckMembers(272) = %v", err)
	}
	if err := cfg.CheckMembers(cfg.Partitions); err != nil {
		t.Fatalf("CheckMembers(271) = %v", err)
	}
}

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
			got := mustAssign(t, tc.members, cfg)
			if len(got) != cfg.Partitions {
				t.Fatalf("%d partitions assigned", len(got))
			}
			reversed := make([]string, len(tc.members))
			for i, m := range tc.members {
				reversed[len(reversed)-1-i] = m
			}
			again := mustAssign(t, reversed, cfg)
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
	if got, err := Assign(nil, cfg); got != nil || err != nil {
		t.Fatalf("no members: %v, %v", got, err)
	}
}

func TestAssignMovesFewPartitionsOnJoin(t *testing.T) {
	cfg := DefaultRingConfig()
	before := mustAssign(t, []string{"n1", "n2", "n3"}, cfg)
	after := mustAssign(t, []string{"n1", "n2", "n3", "n4"}, cfg)
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
