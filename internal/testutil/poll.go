// Package testutil holds what tests across Dura share: Poll, the one way a
// test waits for something. It imports nothing of Dura, so any package's
// tests, internal or external, may use it. The single-node harness, which
// needs node and rpc, is in the subpackage nodetest.
package testutil

import (
	"testing"
	"time"
)

// Interval is how long Poll sleeps between two calls of its condition.
const Interval = 20 * time.Millisecond

// Poll calls cond every Interval until it returns "" (done) or timeout
// passes; then it fails the test with what, the timeout and the last reason
// cond gave. cond is called at least once, and once more after the deadline
// so a slow last call does not waste the wait.
func Poll(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	PollEvery(t, timeout, Interval, what, cond)
}

// PollEvery is Poll calling cond every interval: for a condition that is
// costly or has effects, such as a write retried until it is served.
func PollEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		reason := cond()
		if reason == "" {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, reason)
			return
		}
		time.Sleep(min(interval, time.Until(deadline)+time.Millisecond))
	}
}

// PollErr is Poll with a condition that is done when it returns nil.
func PollErr(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	Poll(t, timeout, what, func() string {
		if err := cond(); err != nil {
			return err.Error()
		}
		return ""
	})
}

// PollTrue is Poll with a yes/no condition; on a timeout it reports that the
// condition was still false.
func PollTrue(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll(t, timeout, what, func() string {
		if cond() {
			return ""
		}
		return "still false"
	})
}
