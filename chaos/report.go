package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dura-dev/dura/rpc"
)

// Counts are a workload's operations by outcome.
type Counts struct {
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
}

// ScenarioReport is the result of one scenario.
type ScenarioReport struct {
	Name      string            `json:"name"`
	About     string            `json:"about"`
	Nodes     int               `json:"nodes"`
	Duration  string            `json:"duration"`
	Workloads []string          `json:"workloads"`
	Ops       map[string]Counts `json:"ops"`
	Findings  Findings          `json:"findings"`
	// LongestUnavailableMs is the longest time an object went from a
	// refused or uncertain operation to its next success.
	LongestUnavailableMs     int64  `json:"longest_unavailable_ms"`
	LongestUnavailableObject string `json:"longest_unavailable_object,omitempty"`
	ConvergeMs               int64  `json:"converge_ms"` // from the last fault healed to every node ready
	// InSyncMs is from the last fault healed to no partition under-
	// replicated (every one with as many in-sync copies as it may have).
	InSyncMs int64    `json:"in_sync_ms"`
	Notes    []string `json:"notes,omitempty"`
	Error    string   `json:"error,omitempty"`
	Pass     bool     `json:"pass"`
	Logs     string   `json:"-"`
}

// registerBudget is the time the linearizability check of a scenario's
// registers may take; a register it does not settle fails the scenario.
const registerBudget = 60 * time.Second

// check runs every checker over the history;
// lost, if set, is the disk a disklost scenario wiped.
func (r *ScenarioReport) check(h *History, final finalState, got []delivery, lost *DiskLoss) {
	r.Ops = map[string]Counts{}
	for _, op := range h.Ops("") {
		c := r.Ops[op.Workload]
		switch op.Outcome {
		case OK:
			c.OK++
		case Fail:
			c.Failed++
		default:
			c.Unknown++
		}
		r.Ops[op.Workload] = c
	}
	f := &r.Findings
	r.Notes = append(r.Notes, checkDiskLoss(h, final, r.Workloads, lost, f)...)
	n := checkSameEpoch(h.Ops(""), f)
	r.Notes = append(r.Notes, fmt.Sprintf("%d acknowledged operations carried their node and epoch (same-epoch double serving check)", n))
	if contains(r.Workloads, Bank) {
		checkBank(h.Ops(Bank), f)
		checkLedger(h.Ops(Bank), final.Bank, f)
	}
	if contains(r.Workloads, Alarms) {
		checkAlarms(h.Ops(Alarms), got, f)
	}

	// Reminder objects get one operation each, never retried: they say
	// nothing about how long an object stays unavailable.
	var avail []Op
	var end time.Duration
	for _, op := range h.Ops("") {
		if op.Workload != Alarms {
			avail = append(avail, op)
			end = max(end, op.Complete)
		}
	}
	d, obj := unavailability(avail, end)
	r.LongestUnavailableMs, r.LongestUnavailableObject = d.Milliseconds(), obj
	r.Pass = r.Error == "" && !f.Failed()
}

// Report is a whole run.
type Report struct {
	Started   time.Time        `json:"started"`
	Machine   string           `json:"machine"`
	Command   string           `json:"command"`
	Scenarios []ScenarioReport `json:"scenarios"`
}

// NewReport describes the machine the run is on.
func NewReport(command string) *Report {
	host, _ := os.Hostname()
	return &Report{Started: time.Now().UTC(), Command: command,
		Machine: fmt.Sprintf("%s, %d CPUs, %s/%s, %s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())}
}

// Pass says whether every scenario passed.
func (r *Report) Pass() bool {
	for _, s := range r.Scenarios {
		if !s.Pass {
			return false
		}
	}
	return len(r.Scenarios) > 0
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteTable writes the short human summary.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tops ok/failed/unknown\tlost\tlinearizability\tdouble-serving\tbank\talarms missed/early\tmax unavailable\tconverge\tin sync\tresult")
	for _, s := range r.Scenarios {
		var ok, failed, unknown int
		for _, c := range s.Ops {
			ok, failed, unknown = ok+c.OK, failed+c.Failed, unknown+c.Unknown
		}
		f := s.Findings
		lin := fmt.Sprint(f.Linearizability)
		if f.Inconclusive > 0 {
			lin += fmt.Sprintf(" (%d inconclusive)", f.Inconclusive)
		}
		result := "PASS"
		if !s.Pass {
			result = "FAIL"
			if s.Error != "" {
				result += ": " + s.Error
			}
		}
		fmt.Fprintf(tw, "%s\t%d/%d/%d\t%d\t%s\t%d\t%d\t%d/%d\t%s\t%s\t%s\t%s\n", s.Name, ok, failed, unknown,
			f.LostWrites+f.PhantomWrites, lin, f.DoubleServing, f.BankViolations, f.AlarmsMissed, f.AlarmsEarly,
			(time.Duration(s.LongestUnavailableMs) * time.Millisecond).String(), (time.Duration(s.ConvergeMs) * time.Millisecond).String(),
			(time.Duration(s.InSyncMs) * time.Millisecond).String(), result)
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", s.Name, n)
		}
		for _, e := range s.Findings.Evidence {
			fmt.Fprintf(w, "evidence (%s): %s\n", s.Name, e)
		}
	}
}

// sqlStmt is a statement with its parameters.
func sqlStmt(sql string, params ...any) rpc.Statement { return rpc.Statement{SQL: sql, Params: params} }

// summary is one line per failed scenario, for test failures.
func (r *Report) summary() string {
	var b strings.Builder
	for _, s := range r.Scenarios {
		if !s.Pass {
			fmt.Fprintf(&b, "%s failed: %s %+v\n", s.Name, s.Error, s.Findings)
		}
	}
	return b.String()
}
