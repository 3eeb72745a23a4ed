package examples_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// receiver records the webhooks it gets; it fails the first failFirst
// and answers each after delay.
type receiver struct {
	mu        sync.Mutex
	got       []map[string]any
	failFirst int
	calls     int
	delay     time.Duration
	answered  time.Time // when it last began its answer
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(rc.delay) // a slow receiver, not a wait for anything
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answered = time.Now()
	rc.calls++
	if rc.calls <= rc.failFirst {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	var m map[string]any
	json.NewDecoder(r.Body).Decode(&m)
	rc.got = append(rc.got, m)
}

func (rc *receiver) deliveries() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.got...)
}

func TestReminderDeliversAtItsTime(t *testing.T) {
	n := newNode(t)
	rc := &receiver{delay: 200 * time.Millisecond}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	at := time.Now().Add(300 * time.Millisecond).UnixMilli()
	n.call("PUT", "reminders", "r1", "/", map[string]any{"at": at, "url": hook.URL, "payload": map[string]int{"n": 7}}, 200, nil)
	testutil.PollTrue(t, 5*time.Second, "reminder delivered", func() bool { return len(rc.deliveries()) == 1 })
	d := rc.deliveries()[0]
	if d["object"] != "r1" || int64(d["at"].(float64)) != at || d["node"] != "test" || d["payload"].(map[string]any)["n"] != 7.0 {
		t.Fatalf("delivery %v", d)
	}
	if started := int64(d["started"].(float64)); started < at {
		t.Fatalf("started %d before its time %d", started, at)
	}
	var state struct {
		Reminder   any
		Deliveries int
		Runs       []struct{ At, Started, Answered int64 }
	}
	testutil.PollTrue(t, 5*time.Second, "delivery logged", func() bool {
		n.call("GET", "reminders", "r1", "/", nil, 200, &state)
		return state.Deliveries == 1
	})
	if state.Reminder != nil || len(state.Runs) != 1 {
		t.Fatalf("after delivery: %+v", state)
	}
	// The run spans the POST and the receiver's slow answer.
	run := state.Runs[0]
	rc.mu.Lock()
	answered := rc.answered.UnixMilli()
	rc.mu.Unlock()
	if run.At != at || run.Started != int64(d["started"].(float64)) || run.Answered < answered || run.Answered-run.Started < 200 {
		t.Fatalf("run %+v, receiver answered at %d", run, answered)
	}
	n.noAdviceWarnings("reminders", "r1")
}

func TestReminderRetriesUntilTheReceiverAccepts(t *testing.T) {
	n := newNode(t)
	rc := &receiver{failFirst: 1}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	n.call("PUT", "reminders", "r2", "/", map[string]any{"at": time.Now().UnixMilli(), "url": hook.URL}, 200, nil)
	// The first retry comes 2 s (plus jitter) after the failure.
	testutil.PollTrue(t, 10*time.Second, "reminder delivered on retry", func() bool { return len(rc.deliveries()) == 1 })
	if d := rc.deliveries()[0]; d["retry"] != 1.0 {
		t.Fatalf("delivery %v, want retry 1", d)
	}
}

func TestReminderBadInputAndCancel(t *testing.T) {
	n := newNode(t)
	n.callErr("PUT", "reminders", "r3", "/", map[string]any{"at": 1, "url": "file:///etc/passwd"}, 400, "BAD_REQUEST")
	n.callErr("PUT", "reminders", "r3", "/", map[string]any{"url": "http://x"}, 400, "BAD_REQUEST")
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	n.call("PUT", "reminders", "r3", "/", map[string]any{"at": time.Now().Add(time.Second).UnixMilli(), "url": hook.URL}, 200, nil)
	n.call("DELETE", "reminders", "r3", "/", nil, 200, nil)
	if a := n.alarm("reminders", "r3"); a != nil {
		t.Fatalf("alarm %d after cancel", *a)
	}
}

// lastTry runs every alarm of a Reminders object as its last retry, so a
// test sees the give-up without waiting out the backoff (about 2 min).
type lastTry struct{ node.Object }

func (l lastTry) Alarm(ctx context.Context, info node.AlarmInfo) error {
	info.RetryCount, info.IsRetry = node.MaxRetries, true
	return l.Object.(node.Alarmer).Alarm(ctx, info)
}

// TestReminderFailedAfterTheLastRetryStaysVisible: when the last retry
// fails, the reminder is kept with "status":"failed" and the error, and
// setting it again makes it pending.
func TestReminderFailedAfterTheLastRetryStaysVisible(t *testing.T) {
	n := startNode(t, t.TempDir(), func(rt *node.Runtime) error {
		return rt.Register("reminders", func(st *node.State) (node.Object, error) {
			o, err := examples.NewReminders(st)
			return lastTry{o}, err
		})
	})
	rc := &receiver{failFirst: 1 << 30}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	type state struct {
		Reminder *struct {
			At     int64
			Status string
			Error  string
		}
		Deliveries int
	}
	at := time.Now().Add(time.Hour).UnixMilli()
	n.call("PUT", "reminders", "f", "/", map[string]any{"at": at, "url": hook.URL}, 200, nil)
	var s state
	n.call("GET", "reminders", "f", "/", nil, 200, &s)
	if s.Reminder == nil || s.Reminder.Status != "pending" {
		t.Fatalf("set: %+v", s.Reminder)
	}
	n.call("PUT", "reminders", "f", "/", map[string]any{"at": time.Now().UnixMilli(), "url": hook.URL}, 200, nil)
	testutil.PollTrue(t, 5*time.Second, "the last try to fail", func() bool {
		n.call("GET", "reminders", "f", "/", nil, 200, &s)
		return s.Reminder != nil && s.Reminder.Status == "failed"
	})
	if !strings.Contains(s.Reminder.Error, "503") || s.Deliveries != 0 {
		t.Fatalf("failed reminder %+v, deliveries %d", s.Reminder, s.Deliveries)
	}
	testutil.PollTrue(t, 5*time.Second, "the alarm to clear", func() bool { return n.alarm("reminders", "f") == nil })
	n.call("PUT", "reminders", "f", "/", map[string]any{"at": at, "url": hook.URL}, 200, nil)
	s = state{}
	n.call("GET", "reminders", "f", "/", nil, 200, &s)
	if s.Reminder == nil || s.Reminder.Status != "pending" || s.Reminder.Error != "" {
		t.Fatalf("set again: %+v", s.Reminder)
	}
}

// TestAlarmHandlerInObjectInfo: GET /v1/objects/{class}/{name} says
// whether the class runs code when the alarm fires.
func TestAlarmHandlerInObjectInfo(t *testing.T) {
	n := newNode(t)
	for _, c := range []struct {
		class string
		want  bool
	}{{"counter", false}, {"reminders", true}, {"cache", true}} {
		n.do("GET", "/objects/"+c.class+"/x/", nil) // activates it, whatever it answers
		var info rpc.ObjectInfo
		r := n.do("GET", "/v1/objects/"+c.class+"/x", nil)
		if err := json.Unmarshal(r.body, &info); err != nil || info.AlarmHandler == nil || *info.AlarmHandler != c.want {
			t.Errorf("%s: %s (%v), want alarm_handler %v", c.class, r.body, err, c.want)
		}
	}
}
