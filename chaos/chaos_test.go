package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildDura builds the dura binary for the run (or takes DURA_CHAOS_BIN).
func buildDura(t *testing.T) string {
	t.Helper()
	if bin := binaryEnv(); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "dura")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/dura").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestChaos runs the representative set (with -short or by default) or,
// with DURA_CHAOS_FULL=1, the full set with every workload, and writes the
// report.
func TestChaos(t *testing.T) {
	full := os.Getenv("DURA_CHAOS_FULL") == "1"
	names, workloads, duration := Short, []string{Counters, Registers}, 30*time.Second
	if full {
		names, workloads, duration = Full, Workloads, 60*time.Second
	}
	if s := os.Getenv("DURA_CHAOS_SCENARIOS"); s != "" {
		names = strings.Split(s, ",")
	}
	if s := os.Getenv("DURA_CHAOS_WORKLOADS"); s != "" {
		workloads = strings.Split(s, ",")
	}
	if s := os.Getenv("DURA_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("DURA_CHAOS_DURATION: %v", err)
		}
		duration = d
	}
	if why := NetAvailable(); why != "" {
		for _, n := range names {
			if Scenarios[n].NeedsNet {
				t.Skipf("the chaos suite needs network namespaces (root, ip, iptables, tc): %s", why)
			}
		}
	}
	bin := buildDura(t)
	command := "go test -short ./chaos"
	if full {
		command = "DURA_CHAOS_FULL=1 go test -timeout 90m -run TestChaos ./chaos"
	}
	rep := NewReport(command)
	for _, name := range names {
		sc, ok := Scenarios[name]
		if !ok {
			t.Fatalf("unknown scenario %q; known: %v", name, Names())
		}
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			sr, err := Run(context.Background(), sc, RunOptions{Bin: bin, Dir: t.TempDir(), Duration: duration, Workloads: workloads,
				Log: func(format string, args ...any) { t.Logf("%6.1fs "+format, append([]any{time.Since(start).Seconds()}, args...)...) }})
			if err != nil {
				sr.Error, sr.Pass = err.Error(), false
			}
			rep.Scenarios = append(rep.Scenarios, sr)
			if !sr.Pass {
				t.Errorf("scenario %s: error %v, findings %+v\nlogs:\n%s", name, err, sr.Findings, sr.Logs)
			}
		})
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("chaos report (%s):\n%s", rep.Machine, table.String())
	out := os.Getenv("DURA_CHAOS_REPORT")
	if out == "" && full {
		out = filepath.Join("reports", "latest.json")
	}
	if out != "" {
		if err := rep.WriteJSON(out); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(strings.TrimSuffix(out, ".json")+".txt", []byte(table.String()), 0o644)
	}
	if !rep.Pass() {
		fmt.Fprint(os.Stderr, rep.summary())
	}
}
