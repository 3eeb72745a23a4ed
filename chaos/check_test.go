package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dura-dev/dura/rpc"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestCheckCounters(t *testing.T) {
	// incr is an increment called at from ms and answered at from+5.
	incr := func(v int64, out Outcome, node string, from int) Op {
		return Op{Kind: "incr", Object: "c", Result: v, Outcome: out, Node: node, Invoke: ms(from), Complete: ms(from + 5)}
	}
	cases := []struct {
		name                       string
		ops                        []Op
		final                      int64
		lost, phantom, double, lin int
	}{
		{"clean", []Op{incr(1, OK, "n1", 0), incr(2, OK, "n2", 10), incr(0, Unknown, "", 20)}, 3, 0, 0, 0, 0},
		{"uncertain not applied", []Op{incr(1, OK, "n1", 0), incr(0, Unknown, "", 10)}, 1, 0, 0, 0, 0},
		{"concurrent increments in any order", []Op{incr(2, OK, "n1", 0), incr(1, OK, "n1", 2)}, 2, 0, 0, 0, 0},
		{"acknowledged lost", []Op{incr(1, OK, "n1", 0), incr(2, OK, "n1", 10), incr(3, OK, "n1", 20)}, 1, 2, 0, 0, 0},
		{"two owners at once", []Op{incr(1, OK, "n1", 0), incr(1, OK, "n2", 2)}, 2, 0, 0, 1, 0},
		{"two owners one after the other", []Op{incr(1, OK, "n1", 0), incr(1, OK, "n2", 10)}, 2, 0, 0, 1, 1},
		{"from nowhere", []Op{incr(1, OK, "n1", 0), incr(0, Fail, "", 10)}, 2, 0, 1, 0, 0},
		// The history: n1 acknowledges 1, an increment is
		// uncertain, n1 acknowledges 3; a stale n2 then answers 2. The
		// values are distinct and the final 3 is within reach, so only
		// the real-time order shows it.
		// A new primary whose copy lacks the last acknowledged
		// increment (the eighth session's admission bug): its next
		// increment repeats a value and is below one acknowledged
		// before it, while the final value is not below any
		// acknowledged one. One double serving, one linearizability
		// finding, nothing lost: the seventh session's unexplained run.
		{"new primary missing an acknowledged increment", []Op{incr(1, OK, "n1", 0), incr(2, OK, "n1", 10), incr(3, OK, "n1", 20), incr(3, OK, "n2", 30), incr(4, OK, "n2", 40)}, 4, 0, 0, 1, 1},
		{"stale owner behind unknown increments", []Op{incr(1, OK, "n1", 0), incr(0, Unknown, "", 10), incr(3, OK, "n1", 20), incr(2, OK, "n2", 30)}, 3, 0, 0, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f Findings
			checkCounters(tc.ops, map[string]int64{"c": tc.final}, &f)
			if f.LostWrites != tc.lost || f.PhantomWrites != tc.phantom || f.DoubleServing != tc.double || f.Linearizability != tc.lin {
				t.Fatalf("findings %+v", f)
			}
		})
	}
}

func TestCheckRegisters(t *testing.T) {
	op := func(kind string, a, b, res int64, ok bool, from, to int, out Outcome) Op {
		return Op{Kind: kind, Object: "r", Arg: a, Arg2: b, Result: res, Success: ok, Invoke: ms(from), Complete: ms(to), Outcome: out}
	}
	cases := []struct {
		name string
		ops  []Op
		bad  int
	}{
		{"sequential", []Op{op("write", 3, 0, 0, false, 0, 10, OK), op("read", 0, 0, 3, false, 20, 30, OK), op("cas", 3, 4, 0, true, 40, 50, OK), op("read", 0, 0, 4, false, 60, 70, OK)}, 0},
		{"concurrent read may see either", []Op{op("write", 3, 0, 0, false, 0, 50, OK), op("read", 0, 0, 0, false, 10, 20, OK), op("read", 0, 0, 3, false, 30, 40, OK)}, 0},
		{"stale read after a write completed", []Op{op("write", 3, 0, 0, false, 0, 10, OK), op("read", 0, 0, 0, false, 20, 30, OK)}, 1},
		{"uncertain write may land later", []Op{op("write", 3, 0, 0, false, 0, 10, Unknown), op("read", 0, 0, 0, false, 20, 30, OK), op("read", 0, 0, 3, false, 40, 50, OK)}, 0},
		{"refused write never lands", []Op{op("write", 3, 0, 0, false, 0, 10, Fail), op("read", 0, 0, 3, false, 20, 30, OK)}, 1},
		{"cas that cannot have applied", []Op{op("cas", 5, 1, 0, true, 0, 10, OK)}, 1},
		// Leaving out an unseen uncertain write must not make this
		// failed compare-and-set illegal: the write explains it.
		{"uncertain write explains a failed cas", []Op{op("write", 1, 0, 0, false, 0, 10, OK), op("write", 7, 0, 0, false, 20, 30, Unknown), op("cas", 1, 8, 0, false, 40, 50, OK)}, 0},
		{"stale read hidden under 40 uncertain writes", hiddenUnderUnknowns(), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f Findings
			checkRegisters(tc.ops, 10*time.Second, &f)
			if f.Linearizability != tc.bad || f.Inconclusive != 0 || f.Failed() != (tc.bad > 0) {
				t.Fatalf("findings %+v", f)
			}
		})
	}
}

// hiddenUnderUnknowns is the history: a write of 1 completes,
// then 40 uncertain writes of values nobody reads, then a read of the
// initial 0. The old checker gave up on it (inconclusive, counted as a
// pass); every write but the stale read's is accounted for, so it is
// illegal.
func hiddenUnderUnknowns() []Op {
	ops := []Op{{Kind: "write", Object: "r", Arg: 1, Invoke: 0, Complete: ms(10), Outcome: OK}}
	for i := range 40 {
		ops = append(ops, Op{Kind: "write", Object: "r", Client: i + 1, Arg: int64(100 + i), Invoke: ms(20 + i), Complete: ms(4020 + i), Outcome: Unknown})
	}
	for i := range 20 {
		ops = append(ops, Op{Kind: "read", Object: "r", Client: 50, Result: 1, Invoke: ms(100 + 10*i), Complete: ms(105 + 10*i), Outcome: OK})
	}
	return append(ops, Op{Kind: "read", Object: "r", Client: 51, Result: 0, Invoke: ms(400), Complete: ms(410), Outcome: OK})
}

// TestInconclusiveFails: a register the checker could not settle was
// never verified, so the scenario does not pass.
func TestInconclusiveFails(t *testing.T) {
	f := Findings{Inconclusive: 2}
	if !f.Failed() {
		t.Fatal("inconclusive registers pass")
	}
}

func TestCheckAlarms(t *testing.T) {
	set := func(obj string, at int64, out Outcome) Op { return Op{Kind: "set", Object: obj, Arg: at, Outcome: out} }
	del := func(obj string, at, start, end int64, node string) delivery {
		return delivery{Object: obj, At: at, Started: start, Answered: end, Node: node}
	}
	var f Findings
	checkAlarms([]Op{set("a", 100, OK), set("b", 100, OK), set("c", 100, Unknown)},
		[]delivery{del("a", 100, 100, 110, "n1"), del("a", 100, 200, 210, "n2"), del("b", 100, 150, 160, "n1")}, &f)
	if f.Failed() || f.AlarmsRedelivered != 1 {
		t.Fatalf("clean alarms: %+v", f)
	}
	f = Findings{}
	checkAlarms([]Op{set("a", 100, OK), set("b", 100, OK), set("c", 100, OK), set("d", 100, Fail)},
		[]delivery{del("a", 100, 99, 105, "n1"), del("b", 100, 100, 150, "n1"), del("b", 100, 140, 160, "n2"), del("d", 100, 100, 101, "n1")}, &f)
	if f.AlarmsEarly != 1 || f.DoubleServing != 1 || f.AlarmsMissed != 1 || f.PhantomWrites != 1 {
		t.Fatalf("broken alarms: %+v", f)
	}
}

// TestWebhookShowsOverlappingRuns posts runs of one reminder to the slow
// webhook as two nodes would. A run used to be [started, finished] with
// both taken before the POST (about 0 ms), so overlapping runs on two
// nodes passed as a redelivery; measured to the webhook's answer they
// overlap.
func TestWebhookShowsOverlappingRuns(t *testing.T) {
	post := func(hook *webhook, node string) {
		body, _ := json.Marshal(map[string]any{"object": "r", "at": 100, "started": time.Now().UnixMilli(), "node": node})
		resp, err := http.Post(hook.url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}
	cases := []struct {
		name       string
		together   bool
		double, re int
	}{
		{"one after the other", false, 0, 1},
		{"two nodes at once", true, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hook, err := startWebhook("127.0.0.1", 200*time.Millisecond, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer hook.close()
			if tc.together {
				var wg sync.WaitGroup
				for _, node := range []string{"n1", "n2"} {
					wg.Add(1)
					go func() { defer wg.Done(); post(hook, node) }()
				}
				wg.Wait()
			} else {
				post(hook, "n1")
				post(hook, "n2")
			}
			var f Findings
			checkAlarms([]Op{{Kind: "set", Object: "r", Arg: 100, Outcome: OK}}, hook.deliveries(), &f)
			if f.DoubleServing != tc.double || f.AlarmsRedelivered != tc.re || f.AlarmDeliveries != 2 {
				t.Fatalf("findings %+v", f)
			}
		})
	}
}

func TestUnavailability(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
		want time.Duration
		obj  string
	}{
		{"closed window", []Op{
			{Object: "x", Invoke: ms(0), Complete: ms(5), Outcome: OK},
			{Object: "x", Invoke: ms(10), Complete: ms(20), Outcome: Fail},
			{Object: "y", Invoke: ms(15), Complete: ms(16), Outcome: OK},
			{Object: "x", Invoke: ms(30), Complete: ms(40), Outcome: Unknown},
			{Object: "x", Invoke: ms(50), Complete: ms(60), Outcome: OK},
		}, ms(50), "x"},
		// Used to read 0 s: the window never closed.
		{"window open at the end", []Op{
			{Object: "x", Invoke: ms(0), Complete: ms(5), Outcome: OK},
			{Object: "x", Invoke: ms(10), Complete: ms(20), Outcome: Unknown},
		}, ms(90), "x"},
		{"single failed operation", []Op{{Object: "z", Invoke: ms(40), Complete: ms(45), Outcome: Fail}}, ms(60), "z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if d, obj := unavailability(tc.ops, ms(100)); d != tc.want || obj != tc.obj {
				t.Fatalf("unavailability %s of %q, want %s of %q", d, obj, tc.want, tc.obj)
			}
		})
	}
}

// TestClassify has a case per refusal class that proves an operation did
// not run (failed), and the answers that leave it open (unknown).
func TestClassify(t *testing.T) {
	answer := func(status int, code, msg string, notExecuted bool) error {
		return &answerError{APIError: &rpc.APIError{Status: status, Code: code, Message: msg}, NotExecuted: notExecuted}
	}
	dialRefused := &url.Error{Op: "Post", URL: "http://10.0.0.1:8080/objects/counter/c/increment",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	cases := []struct {
		name string
		err  error
		want Outcome
	}{
		{"acknowledged", nil, OK},
		// The server says it did not run.
		{"owner unreachable at dial time", answer(503, "OWNER_UNAVAILABLE", "owner 10.0.0.2:7947 unreachable: connect: connection refused", true), Fail},
		{"owner fenced", answer(503, "OWNER_UNAVAILABLE", "partition 3 is not served here now", true), Fail},
		{"object could not be opened", answer(500, "INTERNAL", "open object db: too many open files", true), Fail},
		{"timed out waiting for the object", answer(504, "TIMEOUT", "waiting for the object", true), Fail},
		// A wiped disk's refusal is failed even without not_executed.
		{"data missing on the owner", answer(503, "OWNER_UNAVAILABLE", "data missing: partition 7's data is missing on node n2 (it came back with an empty or different data directory); restart it with its original data directory, or remove it with 'dura node remove --force n2'", false), Fail},
		// The event failed and was rolled back.
		{"storage full", answer(507, "STORAGE_FULL", "database or disk is full", false), Fail},
		{"bad request", answer(400, "BAD_REQUEST", "", false), Fail},
		{"sql error", answer(400, "SQL_ERROR", "", false), Fail},
		{"constraint", answer(409, "CONSTRAINT", "", false), Fail},
		{"not found", answer(404, "NOT_FOUND", "", false), Fail},
		{"unknown class", answer(404, "UNKNOWN_CLASS", "", false), Fail},
		{"not authorized", answer(403, "NOT_AUTHORIZED", "", false), Fail},
		{"too large", answer(413, "TOO_LARGE", "", false), Fail},
		{"unauthenticated", answer(401, "UNAUTHENTICATED", "", false), Fail},
		{"forbidden", answer(403, "FORBIDDEN", "", false), Fail},
		{"rpc error of a rolled-back code", &rpc.APIError{Status: 409, Code: "CONSTRAINT"}, Fail},
		// The request never left.
		{"entry node refuses the connection", dialRefused, Fail},
		{"connection refused, wrapped", fmt.Errorf("post: %w", syscall.ECONNREFUSED), Fail},
		// It may have run.
		{"503 without not_executed", answer(503, "OWNER_UNAVAILABLE", "owner 10.0.0.2:7947 unreachable: EOF", false), Unknown},
		{"504 without not_executed", answer(504, "TIMEOUT", "", false), Unknown},
		{"500 without not_executed", answer(500, "INTERNAL", "", false), Unknown},
		{"non-JSON 502", answer(502, "", "Bad Gateway", false), Unknown},
		{"client timeout after sending", &url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, Unknown},
		{"connection reset after sending", &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// TestDecodeAnswerError reads not_executed from the error body, and its
// absence (an older server) as false.
func TestDecodeAnswerError(t *testing.T) {
	cases := []struct {
		name, body  string
		code        string
		notExecuted bool
	}{
		{"refused before the event", `{"error":{"code":"OWNER_UNAVAILABLE","message":"owner unreachable","not_executed":true}}`, "OWNER_UNAVAILABLE", true},
		{"no field", `{"error":{"code":"TIMEOUT","message":"deadline"}}`, "TIMEOUT", false},
		{"not JSON", `Bad Gateway`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.WriteHeader(503)
			rec.WriteString(tc.body)
			err := decodeAnswerError(rec.Result())
			var ae *answerError
			if !errors.As(err, &ae) || ae.Code != tc.code || ae.NotExecuted != tc.notExecuted || ae.Status != 503 {
				t.Fatalf("decoded %#v", err)
			}
		})
	}
}

func TestCheckSameEpoch(t *testing.T) {
	op := func(obj, node string, epoch uint64, from, to int, out Outcome) Op {
		return Op{Kind: "incr", Object: obj, Node: node, Epoch: epoch, Invoke: ms(from), Complete: ms(to), Outcome: out}
	}
	cases := []struct {
		name   string
		ops    []Op
		double int
	}{
		{"one node", []Op{op("c", "n1", 5, 0, 10, OK), op("c", "n1", 5, 2, 12, OK)}, 0},
		{"handoff: the epoch changed", []Op{op("c", "n1", 5, 0, 10, OK), op("c", "n2", 7, 2, 12, OK)}, 0},
		{"one after the other in one epoch", []Op{op("c", "n1", 5, 0, 10, OK), op("c", "n2", 5, 11, 20, OK)}, 0},
		{"two objects", []Op{op("c", "n1", 5, 0, 10, OK), op("d", "n2", 5, 2, 12, OK)}, 0},
		{"a refused or uncertain one says nothing", []Op{op("c", "n1", 5, 0, 10, OK), op("c", "n2", 5, 2, 12, Fail), op("c", "n3", 5, 2, 12, Unknown)}, 0},
		{"no epoch header", []Op{op("c", "n1", 0, 0, 10, OK), op("c", "n2", 0, 2, 12, OK)}, 0},
		{"two nodes at once in one epoch", []Op{op("c", "n1", 5, 0, 10, OK), op("c", "n2", 5, 2, 12, OK)}, 1},
		// The long one overlaps both later ones; the pair counts once.
		{"counted once per pair of nodes", []Op{op("c", "n1", 5, 0, 100, OK), op("c", "n2", 5, 10, 20, OK), op("c", "n2", 5, 30, 40, OK), op("c", "n2", 6, 50, 60, OK)}, 1},
		{"found behind a long operation", []Op{op("c", "n1", 5, 0, 100, OK), op("c", "n1", 5, 10, 20, OK), op("c", "n3", 5, 90, 95, OK)}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f Findings
			checkSameEpoch(tc.ops, &f)
			if f.DoubleServing != tc.double || f.Failed() != (tc.double > 0) {
				t.Fatalf("findings %+v", f)
			}
		})
	}
}
