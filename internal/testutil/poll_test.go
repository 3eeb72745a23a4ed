package testutil

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestPoll(t *testing.T) {
	cases := []struct {
		name     string
		doneAt   int    // the call on which cond is done; 0: never
		wantFail string // "" means Poll must not fail
	}{
		{name: "done at once", doneAt: 1},
		{name: "done later", doneAt: 4},
		{name: "never done", wantFail: "the thing: not within 200ms: call "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			calls := 0
			start := time.Now()
			Poll(f, 200*time.Millisecond, "the thing", func() string {
				calls++
				if calls == tc.doneAt {
					return ""
				}
				return fmt.Sprint("call ", calls)
			})
			if tc.wantFail == "" {
				if f.failed != "" {
					t.Fatalf("failed: %s", f.failed)
				}
				if calls != tc.doneAt {
					t.Fatalf("cond called %d times, want %d", calls, tc.doneAt)
				}
				return
			}
			// The message names the last reason cond gave.
			if want := tc.wantFail + fmt.Sprint(calls); f.failed != want {
				t.Fatalf("failure %q, want %q", f.failed, want)
			}
			if el := time.Since(start); el < 200*time.Millisecond || el > 2*time.Second {
				t.Fatalf("gave up after %s, want about 200ms", el)
			}
			if calls < 3 {
				t.Fatalf("cond called %d times in 200ms", calls)
			}
		})
	}
}

func TestPollErrAndTrue(t *testing.T) {
	f := &fakeTB{TB: t}
	PollErr(f, 50*time.Millisecond, "no error", func() error { return errors.New("still broken") })
	if !strings.HasSuffix(f.failed, ": still broken") || !strings.HasPrefix(f.failed, "no error: not within 50ms") {
		t.Fatalf("PollErr failure %q", f.failed)
	}
	f = &fakeTB{TB: t}
	PollTrue(f, 50*time.Millisecond, "flag set", func() bool { return false })
	if f.failed != "flag set: not within 50ms: still false" {
		t.Fatalf("PollTrue failure %q", f.failed)
	}
	f = &fakeTB{TB: t}
	n := 0
	PollErr(f, time.Second, "no error", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	PollTrue(f, time.Second, "true", func() bool { return true })
	if f.failed != "" {
		t.Fatalf("failed: %s", f.failed)
	}
}
