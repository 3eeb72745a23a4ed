package chaos

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Findings are the invariant checks of one scenario; every count must be
// zero except the informational ones.
type Findings struct {
	LostWrites        int   `json:"lost_writes"`    // acknowledged writes missing afterwards
	PhantomWrites     int   `json:"phantom_writes"` // effects of writes nobody made (or that were refused)
	Linearizability   int   `json:"linearizability_violations"`
	Inconclusive      int   `json:"linearizability_inconclusive"` // objects the checker gave up on (time limit): a failure
	CheckMs           int64 `json:"linearizability_check_ms"`     // time the register check took
	CheckBudgetMs     int64 `json:"linearizability_budget_ms"`    // and the time it was allowed
	DoubleServing     int   `json:"double_serving"`               // two nodes serving one object at once
	BankViolations    int   `json:"bank_violations"`              // totals changed or balances went negative
	AlarmsMissed      int   `json:"alarms_missed"`                // acknowledged alarms that never fired
	AlarmsEarly       int   `json:"alarms_early"`                 // alarms that ran before their time
	AlarmDeliveries   int   `json:"alarm_deliveries"`
	AlarmsRedelivered int   `json:"alarms_redelivered"` // fired more than once (allowed: at least once)
	UnexpectedExits   int   `json:"unexpected_exits"`   // nodes that exited without the harness stopping them
	ShardedTotals     int   `json:"sharded_totals"`     // a sharded counter's total or shards not what its shards hold
	// DiskLost (informational) is how many objects of a node whose disk
	// was wiped had acknowledged data and restarted empty once it was
	// removed: expected with one copy (disklost.go).
	DiskLost int      `json:"disk_lost_objects,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
}

// Failed says whether any invariant broke or could not be verified (an
// inconclusive register was never checked, so it does not pass).
func (f *Findings) Failed() bool {
	return f.LostWrites+f.PhantomWrites+f.Linearizability+f.Inconclusive+f.DoubleServing+f.BankViolations+f.AlarmsMissed+f.AlarmsEarly+f.UnexpectedExits+f.ShardedTotals > 0
}

const maxEvidence = 20

func (f *Findings) evidence(format string, args ...any) {
	if len(f.Evidence) < maxEvidence {
		f.Evidence = append(f.Evidence, fmt.Sprintf(format, args...))
	}
}

func describe(op Op) string {
	return fmt.Sprintf("%s %s %s arg=%d arg2=%d result=%d success=%v via %s on %s epoch %d [%s..%s] %s %s",
		op.Workload, op.Kind, op.Object, op.Arg, op.Arg2, op.Result, op.Success, op.Entry, op.Node, op.Epoch,
		op.Invoke.Round(time.Millisecond), op.Complete.Round(time.Millisecond), op.Outcome, op.Err)
}

// checkCounters: each acknowledged increment returned a distinct value
// (two equal values mean two nodes incremented from the same state) and
// more than every acknowledged increment that completed before it was
// invoked (less means a stale copy served it); the final value is at
// least the highest acknowledged one, and at most what acknowledged plus
// uncertain increments could reach. A nil final means the history has no
// final reads (the part before a removal, disklost.go): only the values
// are checked.
func checkCounters(ops []Op, final map[string]int64, f *Findings) {
	byObj := map[string][]Op{}
	for _, op := range ops {
		if op.Kind == "incr" {
			byObj[op.Object] = append(byObj[op.Object], op)
		}
	}
	for obj, incs := range byObj {
		seen := map[int64]Op{}
		var okN, unknownN int64
		var highest int64
		for _, op := range incs {
			switch op.Outcome {
			case OK:
				okN++
				if prev, dup := seen[op.Result]; dup {
					f.DoubleServing++
					f.evidence("counter %s returned %d twice: %s | %s", obj, op.Result, describe(prev), describe(op))
				}
				seen[op.Result] = op
				highest = max(highest, op.Result)
			case Unknown:
				unknownN++
			}
		}
		checkCounterOrder(obj, incs, f)
		if final == nil {
			continue
		}
		fin, ok := final[obj]
		if !ok {
			f.LostWrites++
			f.evidence("counter %s: no final read succeeded", obj)
			continue
		}
		if fin < highest {
			lost := 0
			for v, op := range seen {
				if v > fin {
					lost++
					if lost <= 3 {
						f.evidence("counter %s is %d after the run, but this increment was acknowledged: %s", obj, fin, describe(op))
					}
				}
			}
			f.LostWrites += lost
		}
		if fin > okN+unknownN {
			f.PhantomWrites += int(fin - okN - unknownN)
			f.evidence("counter %s is %d, but only %d increments were acknowledged and %d uncertain", obj, fin, okN, unknownN)
		}
	}
}

// checkCounterOrder flags each acknowledged increment whose value is not
// above that of every acknowledged increment completed before its call.
func checkCounterOrder(obj string, incs []Op, f *Findings) {
	var acked []Op
	for _, op := range incs {
		if op.Outcome == OK {
			acked = append(acked, op)
		}
	}
	byComplete := append([]Op(nil), acked...)
	sort.Slice(byComplete, func(i, j int) bool { return byComplete[i].Complete < byComplete[j].Complete })
	sort.Slice(acked, func(i, j int) bool { return acked[i].Invoke < acked[j].Invoke })
	var before Op // the highest value acknowledged so far
	k := 0
	for _, op := range acked {
		for ; k < len(byComplete) && byComplete[k].Complete < op.Invoke; k++ {
			if byComplete[k].Result > before.Result {
				before = byComplete[k]
			}
		}
		if k > 0 && op.Result <= before.Result {
			f.Linearizability++
			f.evidence("counter %s returned %d after %d was acknowledged (stale copy): %s | before it: %s", obj, op.Result, before.Result, describe(op), describe(before))
		}
	}
}

// checkSameEpoch flags each object whose acknowledged operations were
// executed by two nodes (X-Dura-Node) in the same ring epoch
// (X-Dura-Epoch) while both operations were in flight: within one epoch
// an object has one owner, so the two ran on two copies at once (a
// handoff changes the epoch). One finding per object, epoch and pair of
// nodes. Operations without a node or an epoch say nothing; it returns
// how many were checked.
func checkSameEpoch(ops []Op, f *Findings) (checked int) {
	byObj := map[string][]Op{}
	for _, op := range ops {
		if op.Outcome == OK && op.Node != "" && op.Epoch != 0 {
			byObj[op.Object] = append(byObj[op.Object], op)
			checked++
		}
	}
	objs := make([]string, 0, len(byObj))
	for o := range byObj {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	type incident struct {
		epoch  uint64
		n1, n2 string
	}
	for _, obj := range objs {
		acked := byObj[obj]
		sort.Slice(acked, func(i, j int) bool { return acked[i].Invoke < acked[j].Invoke })
		seen := map[incident]bool{}
		var open []Op // operations that may still overlap the next one
		for _, op := range acked {
			kept := open[:0]
			for _, o := range open {
				if o.Complete > op.Invoke {
					kept = append(kept, o)
				}
			}
			open = kept
			for _, o := range open {
				if o.Node == op.Node || o.Epoch != op.Epoch {
					continue
				}
				k := incident{op.Epoch, min(o.Node, op.Node), max(o.Node, op.Node)}
				if seen[k] {
					continue
				}
				seen[k] = true
				f.DoubleServing++
				f.evidence("%s served by %s and %s at once in epoch %d: %s | %s", obj, k.n1, k.n2, k.epoch, describe(o), describe(op))
			}
			open = append(open, op)
		}
	}
	return checked
}

// register operations for porcupine.
type regInput struct {
	obj       string // the register: porcupine checks each on its own
	kind      string
	arg, arg2 int64
}

type regOutput struct {
	result  int64
	success bool
	unknown bool
}

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byObj := map[string][]porcupine.Operation{}
		var objs []string
		for _, op := range history {
			obj := op.Input.(regInput).obj
			if _, ok := byObj[obj]; !ok {
				objs = append(objs, obj)
			}
			byObj[obj] = append(byObj[obj], op)
		}
		out := make([][]porcupine.Operation, 0, len(objs))
		for _, obj := range objs {
			out = append(out, byObj[obj])
		}
		return out
	},
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(int64), input.(regInput), output.(regOutput)
		switch in.kind {
		case "read":
			return out.result == s, s
		case "write":
			return true, in.arg
		case "cas":
			if out.unknown {
				if s == in.arg {
					return true, in.arg2
				}
				return true, s
			}
			if out.success {
				return s == in.arg, in.arg2
			}
			return s != in.arg, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch in.kind {
		case "read":
			return fmt.Sprintf("read -> %d", out.result)
		case "write":
			return fmt.Sprintf("write %d", in.arg)
		}
		return fmt.Sprintf("cas %d->%d = %v (unknown %v)", in.arg, in.arg2, out.success, out.unknown)
	},
}

// How registerHistory treats an uncertain write (or compare-and-set)
// of a value nobody saw. Such an operation can always be placed after
// everything else, so if the history without it is linearizable so is
// the whole: leaving it out (prune) or standing one write of an unseen
// value in for all of them (collapse) never hides a violation. The
// converse fails only through a failed compare-and-set, which such a
// write may explain; so a pruned history found illegal is checked
// collapsed if it has one, and whole if that is illegal too.
type unseenWrites int

const (
	prune unseenWrites = iota
	collapse
	keep
)

// unseen stands for the value of a collapsed write: no write has it.
const unseen = -1

// registerHistory is the registers' history for porcupine, by register.
// Refused operations did not happen; uncertain writes may have happened
// at any point after their call (they never return); uncertain reads say
// nothing and are left out.
func registerHistory(ops []Op, mode unseenWrites) map[string][]porcupine.Operation {
	observed := map[string]map[int64]bool{}
	for _, op := range ops {
		if observed[op.Object] == nil {
			observed[op.Object] = map[int64]bool{0: true}
		}
		switch {
		case op.Outcome == OK && op.Kind == "read":
			observed[op.Object][op.Result] = true
		case op.Outcome != Fail && op.Kind == "cas":
			observed[op.Object][op.Arg] = true
		}
	}
	byObj := map[string][]porcupine.Operation{}
	stand := map[string]int{} // collapse: the index of the stand-in write
	for _, op := range ops {
		if op.Outcome == Fail || op.Outcome == Unknown && op.Kind == "read" {
			continue
		}
		in := regInput{op.Object, op.Kind, op.Arg, op.Arg2}
		ret := int64(op.Complete)
		if op.Outcome == Unknown {
			ret = math.MaxInt64 / 2
			written := op.Arg
			if op.Kind == "cas" {
				written = op.Arg2
			}
			switch {
			case mode == keep || observed[op.Object][written]:
			case mode == prune:
				continue
			default: // collapse into one write at the earliest call
				if i, ok := stand[op.Object]; ok {
					if h := byObj[op.Object]; int64(op.Invoke) < h[i].Call {
						h[i].Call = int64(op.Invoke)
					}
					continue
				}
				stand[op.Object] = len(byObj[op.Object])
				in = regInput{op.Object, "write", unseen, 0}
			}
		}
		byObj[op.Object] = append(byObj[op.Object], porcupine.Operation{
			ClientId: op.Client, Input: in, Call: int64(op.Invoke), Return: ret,
			Output: regOutput{result: op.Result, success: op.Success, unknown: op.Outcome == Unknown},
		})
	}
	return byObj
}

// failedCAS says whether a history has an acknowledged compare-and-set
// that did not apply.
func failedCAS(h []porcupine.Operation) bool {
	for _, op := range h {
		if in, out := op.Input.(regInput), op.Output.(regOutput); in.kind == "cas" && !out.unknown && !out.success {
			return true
		}
	}
	return false
}

// checkRegisters checks the registers for linearizability within budget,
// all at once with the model partitioned by register, then register by
// register to name any that failed. A register not settled within the
// budget is inconclusive, which fails the run.
func checkRegisters(ops []Op, budget time.Duration, f *Findings) {
	start := time.Now()
	defer func() { f.CheckMs, f.CheckBudgetMs = time.Since(start).Milliseconds(), budget.Milliseconds() }()
	pruned := registerHistory(ops, prune)
	var all []porcupine.Operation
	objs := make([]string, 0, len(pruned))
	for o, h := range pruned {
		objs = append(objs, o)
		all = append(all, h...)
	}
	if porcupine.CheckOperationsTimeout(registerModel, all, budget) == porcupine.Ok {
		return
	}
	sort.Strings(objs)
	var collapsed, whole map[string][]porcupine.Operation
	for _, obj := range objs {
		res := checkWithin(pruned[obj], budget-time.Since(start))
		if res == porcupine.Illegal && failedCAS(pruned[obj]) {
			if collapsed == nil {
				collapsed, whole = registerHistory(ops, collapse), registerHistory(ops, keep)
			}
			if res = checkWithin(collapsed[obj], budget-time.Since(start)); res == porcupine.Illegal {
				res = checkWithin(whole[obj], budget-time.Since(start))
			}
		}
		switch res {
		case porcupine.Illegal:
			f.Linearizability++
			f.evidence("register %s: history of %d operations is not linearizable", obj, len(pruned[obj]))
		case porcupine.Unknown:
			f.Inconclusive++
			f.evidence("register %s: %d operations not settled within the %s budget", obj, len(pruned[obj]), budget)
		}
	}
}

// checkWithin checks one history in the time left; none left is Unknown.
func checkWithin(h []porcupine.Operation, left time.Duration) porcupine.CheckResult {
	if left <= 0 {
		return porcupine.Unknown
	}
	return porcupine.CheckOperationsTimeout(registerModel, h, left)
}

// checkAlarms: every acknowledged reminder was delivered at least once,
// none ran before its time, and no two nodes ran one object's alarm at
// overlapping times (a run lasts from its start to the webhook's answer;
// a run that starts in the millisecond another was answered follows it).
func checkAlarms(ops []Op, got []delivery, f *Findings) {
	byObj := map[string][]delivery{}
	for _, d := range got {
		byObj[d.Object] = append(byObj[d.Object], d)
		f.AlarmDeliveries++
		if d.Started < d.At {
			f.AlarmsEarly++
			f.evidence("reminder %s due %d started at %d on %s", d.Object, d.At, d.Started, d.Node)
		}
	}
	for _, op := range ops {
		ds := byObj[op.Object]
		switch op.Outcome {
		case OK:
			n := 0
			for _, d := range ds {
				if d.At == op.Arg {
					n++
				}
			}
			if n == 0 {
				f.AlarmsMissed++
				f.evidence("acknowledged reminder never delivered: %s", describe(op))
			}
			if n > 1 {
				f.AlarmsRedelivered++
			}
		case Fail:
			if len(ds) > 0 {
				f.PhantomWrites++
				f.evidence("a refused reminder was delivered (%d times): %s", len(ds), describe(op))
			}
		}
	}
	for obj, ds := range byObj {
		for i := range ds {
			for j := i + 1; j < len(ds); j++ {
				a, b := ds[i], ds[j]
				if a.Node != b.Node && a.Started < b.Answered && b.Started < a.Answered {
					f.DoubleServing++
					f.evidence("reminder %s ran on %s [%d..%d] and %s [%d..%d] at once", obj, a.Node, a.Started, a.Answered, b.Node, b.Started, b.Answered)
				}
			}
		}
	}
}

// unavailability is the longest time any object went from a refused or
// uncertain operation to the completion of its next successful one; a
// window still open when the history ends closes at end (an object whose
// every operation failed is unavailable from its first to the end).
func unavailability(ops []Op, end time.Duration) (time.Duration, string) {
	sort.Slice(ops, func(i, j int) bool { return ops[i].Invoke < ops[j].Invoke })
	down := map[string]time.Duration{}
	var worst time.Duration
	var which string
	for _, op := range ops {
		since, isDown := down[op.Object]
		switch {
		case op.Outcome == OK && isDown:
			if d := op.Complete - since; d > worst {
				worst, which = d, op.Object
			}
			delete(down, op.Object)
		case op.Outcome != OK && !isDown:
			down[op.Object] = op.Invoke
		}
	}
	objs := make([]string, 0, len(down))
	for o := range down {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	for _, o := range objs {
		if d := end - down[o]; d > worst {
			worst, which = d, o
		}
	}
	return worst, which
}
