package chaos

import (
	"sync"
	"time"
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
	Workload string `json:"workload"`
	Kind     string `json:"kind"`
	Object   string `json:"object"`
	Client   int    `json:"client"`
	Entry    string `json:"entry"`           // the node the request was sent to
	Node     string `json:"node,omitempty"`  // the node that executed it
	Epoch    uint64 `json:"epoch,omitempty"` // its ring epoch (X-Dura-Epoch)
	Arg      int64  `json:"arg,omitempty"`   // value written, amount, alarm time
	Arg2     int64  `json:"arg2,omitempty"`  // compare-and-set: the new value
	Result   int64  `json:"result,omitempty"`
	Success  bool   `json:"success,omitempty"` // compare-and-set applied
	// Accounts: a transfer's from and to account; a bank read's balance
	// of each account. Seq: the last ledger row a bank read saw.
	Accounts []int64       `json:"accounts,omitempty"`
	Seq      int64         `json:"seq,omitempty"`
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
