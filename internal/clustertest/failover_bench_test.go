package clustertest

import (
	"os"
	"testing"
	"time"
)

// TestAlarmFailoverBenchmark reports how long overdue alarms wait after a
// failure: from killing the Raft leader until the surviving owners' due
// alarms have all run, and from restarting a killed owner until its
// overdue alarms have all run. Only with DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run AlarmFailoverBenchmark -v ./internal/clustertest
func TestAlarmFailoverBenchmark(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)

	// Leader loss: alarms due 500 ms after the kill.
	objs := names("fl", 60)
	owner := map[string]string{}
	at := time.Now().Add(3 * time.Second)
	for i, n := range objs {
		arm(t, c, i%3, n, at)
		owner[n] = ownerOf(t, c, n)
	}
	leader := c.Leader()
	time.Sleep(time.Until(at.Add(-500 * time.Millisecond)))
	killed := time.Now()
	for i, nd := range c.Nodes {
		if nd == leader {
			c.Kill(i)
		}
	}
	var survivors []string
	for _, n := range objs {
		if owner[n] != leader.Name {
			survivors = append(survivors, n)
		}
	}
	fired := waitFired(t, c, survivors, at, false)
	var lastRun int64
	for _, rs := range fired {
		lastRun = max(lastRun, rs[0].at)
	}
	t.Logf("leader killed 500 ms before %d alarms on other owners were due: the last ran %s after its time (%s after the kill)",
		len(survivors), time.Duration(lastRun-at.UnixMilli())*time.Millisecond, time.UnixMilli(lastRun).Sub(killed).Round(time.Millisecond))
	for i, nd := range c.Nodes {
		if nd == leader {
			c.Restart(i)
		}
	}
	c.WaitConverged(60 * time.Second)

	// Owner loss: its alarms come due while it is down.
	victim := c.Nodes[1]
	var theirs []string
	at = time.Now().Add(time.Second)
	for _, n := range names("fo", 60) {
		arm(t, c, 0, n, at)
		if ownerOf(t, c, n) == victim.Name {
			theirs = append(theirs, n)
		}
	}
	c.Kill(1)
	time.Sleep(time.Until(at.Add(time.Second)))
	restarted := time.Now()
	c.Restart(1)
	fired = waitFired(t, c, theirs, at, true)
	lastRun = 0
	for _, rs := range fired {
		lastRun = max(lastRun, rs[0].at)
	}
	t.Logf("owner restarted 1 s after its %d alarms were due: the last ran %s after the restart began",
		len(theirs), time.UnixMilli(lastRun).Sub(restarted).Round(time.Millisecond))
}
