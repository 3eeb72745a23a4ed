package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

// An object idle past ReleaseAfter gives back its SQLite caches and stays
// active: its in-memory state and its storage are there at the next event,
// which marks it in use again. (What a release gives back is measured by
// objectstore's TestReleaseGivesBackMemory.)
func TestIdleObjectsReleaseTheirCaches(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) {
		c.ReleaseAfter = 20 * time.Millisecond
	}, map[string]Constructor{
		"mem": hitCounter,
	})
	released := func(name string) bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		for _, inst := range rt.objects {
			if inst.ref.name == name {
				return inst.released
			}
		}
		return false
	}
	for round := 1; round <= 3; round++ {
		for i := range 20 {
			if _, body, err := call(t, rt, "mem", fmt.Sprint("o", i), "POST", "/", ""); err != nil || body != fmt.Sprintf("%d/%d", round, round) {
				t.Fatalf("round %d, o%d: %q %v", round, i, body, err)
			}
		}
		testutil.PollTrue(t, 5*time.Second, "every idle object released", func() bool {
			for i := range 20 {
				if !released(fmt.Sprint("o", i)) {
					return false
				}
			}
			return true
		})
	}
	rt.mu.Lock()
	open, active := rt.open, len(rt.objects)
	rt.mu.Unlock()
	if open != 20 || active != 20 {
		t.Fatalf("%d open, %d active after releases: a release is not an eviction", open, active)
	}
}
