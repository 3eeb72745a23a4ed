package examples_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
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
	eventually(t, 5*time.Second, "reminder delivered", func() bool { return len(rc.deliveries()) == 1 })
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
	eventually(t, 5*time.Second, "delivery logged", func() bool {
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
}

func TestReminderRetriesUntilTheReceiverAccepts(t *testing.T) {
	n := newNode(t)
	rc := &receiver{failFirst: 1}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	n.call("PUT", "reminders", "r2", "/", map[string]any{"at": time.Now().UnixMilli(), "url": hook.URL}, 200, nil)
	// The first retry comes 2 s (plus jitter) after the failure.
	eventually(t, 10*time.Second, "reminder delivered on retry", func() bool { return len(rc.deliveries()) == 1 })
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
