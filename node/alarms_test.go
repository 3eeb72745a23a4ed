package node

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

func stmts(qs ...string) []rpc.Statement {
	out := make([]rpc.Statement, len(qs))
	for i, q := range qs {
		out[i] = rpc.Statement{SQL: q}
	}
	return out
}

type alarmLog struct {
	mu    sync.Mutex
	fired []AlarmInfo
	at    []time.Time
}

func (l *alarmLog) add(info AlarmInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fired = append(l.fired, info)
	l.at = append(l.at, time.Now())
}

func (l *alarmLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fired)
}

func alarmClass(log *alarmLog, failures int) Constructor {
	var mu sync.Mutex
	left := failures
	return func(st *State) (Object, error) {
		return &funcObject{
			fetch: func(w http.ResponseWriter, r *http.Request) error { return nil },
			alarm: func(ctx context.Context, info AlarmInfo) error {
				log.add(info)
				mu.Lock()
				defer mu.Unlock()
				if left > 0 {
					left--
					return errors.New("not yet")
				}
				return nil
			},
		}, nil
	}
}

func TestAlarmFiresAtOrAfterItsTime(t *testing.T) {
	var log alarmLog
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{"al": alarmClass(&log, 0)})
	at := time.Now().Add(300 * time.Millisecond)
	if err := rt.SetAlarm(context.Background(), "al", "x", at.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 5*time.Second, "the alarm fires once", func() bool { return log.len() == 1 })
	if log.at[0].Before(time.UnixMilli(at.UnixMilli())) {
		t.Fatalf("fired %s before its time %s", log.at[0], at)
	}
	if log.fired[0].IsRetry || !log.fired[0].ScheduledTime.Equal(time.UnixMilli(at.UnixMilli())) {
		t.Fatalf("info %+v", log.fired[0])
	}
	testutil.PollTrue(t, 5*time.Second, "the alarm clears", func() bool {
		a, _ := rt.GetAlarm(context.Background(), "al", "x")
		return a == nil
	})
}

func TestAlarmInThePastFiresAtOnce(t *testing.T) {
	var log alarmLog
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{"al": alarmClass(&log, 0)})
	if err := rt.SetAlarm(context.Background(), "al", "x", time.Now().Add(-time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 2*time.Second, "the past alarm fires", func() bool { return log.len() == 1 })
}

func TestAlarmRetriesWithBackoff(t *testing.T) {
	var log alarmLog
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{"al": alarmClass(&log, 1)})
	if err := rt.SetAlarm(context.Background(), "al", "x", time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 10*time.Second, "the alarm fires and is retried", func() bool { return log.len() == 2 })
	gap := log.at[1].Sub(log.at[0])
	if gap < RetryBase || gap > RetryBase*3/2 {
		t.Fatalf("retry came after %s, want 2s..3s", gap)
	}
	if !log.fired[1].IsRetry || log.fired[1].RetryCount != 1 || !log.fired[1].ScheduledTime.Equal(log.fired[0].ScheduledTime) {
		t.Fatalf("retry info %+v", log.fired[1])
	}
}

func TestDeletedAlarmDoesNotFire(t *testing.T) {
	var log alarmLog
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{"al": alarmClass(&log, 0)})
	ctx := context.Background()
	rt.SetAlarm(ctx, "al", "gone", time.Now().Add(200*time.Millisecond).UnixMilli())
	rt.SetAlarm(ctx, "al", "kept", time.Now().Add(300*time.Millisecond).UnixMilli())
	if err := rt.DeleteAlarm(ctx, "al", "gone"); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 5*time.Second, "the kept alarm fires", func() bool { return log.len() >= 1 })
	// "kept" fired after "gone" was due: had "gone" survived it would have
	// fired first.
	if log.len() != 1 {
		t.Fatalf("fired %d alarms, want only the kept one", log.len())
	}
}

func TestAlarmSurvivesRestartAndFiresOnce(t *testing.T) {
	dir := t.TempDir()
	var log alarmLog
	classes := map[string]Constructor{"al": alarmClass(&log, 0)}
	rt := newTestRuntime(t, dir, nil, classes)
	if err := rt.SetAlarm(context.Background(), "al", "x", time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	rt.Close(context.Background())
	// Restart with a clock an hour and a half ahead: the overdue alarm
	// fires once, not once per missed period.
	rt2 := newTestRuntime(t, dir, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(90 * time.Minute) }
	}, classes)
	testutil.PollTrue(t, 5*time.Second, "the overdue alarm fires after the restart", func() bool { return log.len() == 1 })
	testutil.PollTrue(t, 5*time.Second, "the alarm clears", func() bool {
		a, _ := rt2.GetAlarm(context.Background(), "al", "x")
		return a == nil
	})
	if log.len() != 1 {
		t.Fatalf("fired %d times", log.len())
	}
}

func TestDBClassAlarmJustClears(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), nil, nil)
	ctx := context.Background()
	if err := rt.SetAlarm(ctx, "db", "x", time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	testutil.PollTrue(t, 5*time.Second, "the alarm clears", func() bool {
		a, _ := rt.GetAlarm(ctx, "db", "x")
		return a == nil
	})
}
