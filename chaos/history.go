package chaos

import (
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dura-dev/dura/rpc"
)

// Outcome is what a client knows of an operation once it returned.
type Outcome string

const (
	OK      Outcome = "ok"      // acknowledged: it happened
	Fail    Outcome = "fail"    // refused: it did not happen
	Unknown Outcome = "unknown" // it may or may not have happened
)

// Op is one recorded operation. Times are offsets from the history's
// start.
type Op struct {
	Workload string        `json:"workload"`
	Kind     string        `json:"kind"`
	Object   string        `json:"object"`
	Client   int           `json:"client"`
	Entry    string        `json:"entry"`          // the node the request was sent to
	Node     string        `json:"node,omitempty"` // the node that executed it
	Arg      int64         `json:"arg,omitempty"`  // value written, amount, alarm time
	Arg2     int64         `json:"arg2,omitempty"` // compare-and-set: the new value
	Result   int64         `json:"result,omitempty"`
	Success  bool          `json:"success,omitempty"` // compare-and-set applied
	Invoke   time.Duration `json:"invoke_ns"`
	Complete time.Duration `json:"complete_ns"`
	Outcome  Outcome       `json:"outcome"`
	Err      string        `json:"err,omitempty"`
}

// History is every operation of a scenario, safe for concurrent Add.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts the clock.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the offset of this moment from the start.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// At is the wall-clock time of an offset.
func (h *History) At(d time.Duration) time.Time { return h.start.Add(d) }

// Add records a finished operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations of one workload ("" for all).
func (h *History) Ops(workload string) []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Op
	for _, op := range h.ops {
		if workload == "" || op.Workload == workload {
			out = append(out, op)
		}
	}
	return out
}

// classify says what an error means for the operation: refused before it
// ran (a 4xx answer, a 503 from the owner's fence, a connection that was
// never made) is Fail; anything that may have run (a timeout, a broken
// connection, a forward whose owner did not answer, a 5xx otherwise) is
// Unknown.
func classify(err error) (Outcome, string) {
	if err == nil {
		return OK, ""
	}
	var ae *rpc.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status < 500:
			return Fail, err.Error()
		case ae.Status == 503 && !strings.Contains(ae.Message, "unreachable"):
			return Fail, err.Error()
		}
		return Unknown, err.Error()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return Fail, err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return Fail, err.Error()
	}
	return Unknown, err.Error()
}
