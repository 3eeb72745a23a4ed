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
	if bin := os.Getenv("DURA_CHAOS_BIN"); bin != "" {
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
	names, workloads, duration := Short, []string{Counters, Registers, Sharded}, 30*time.Second
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
	bin := buildDura(t)
	command := "go test -short ./chaos"
	out := os.Getenv("DURA_CHAOS_REPORT")
	if full {
		command = "DURA_CHAOS_FULL=1 go test -timeout 90m -run TestChaos ./chaos"
		if out == "" {
			out = filepath.Join("reports", "latest.json")
		}
	}
	runSet(t, names, workloads, duration, RunOptions{Bin: bin}, command, out)
}

// TestChaosCompose runs the process-fault scenarios against the deploy/
// compose cluster (containers: kill -s SIGKILL, pause, stop, start).
// Only with DURA_CHAOS_COMPOSE=1 and a Docker engine:
//
//	DURA_CHAOS_COMPOSE=1 go test -run TestChaosCompose -v -timeout 30m ./chaos
func TestChaosCompose(t *testing.T) {
	if os.Getenv("DURA_CHAOS_COMPOSE") != "1" {
		t.Skip("containers: set DURA_CHAOS_COMPOSE=1")
	}
	if why := ComposeAvailable(); why != "" {
		t.Fatalf("DURA_CHAOS_COMPOSE=1 but the compose cluster cannot run: %s", why)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	runSet(t, []string{"kill", "pause", "leader", "rolling"}, []string{Counters, Registers, Bank}, 30*time.Second,
		RunOptions{Compose: repo}, "DURA_CHAOS_COMPOSE=1 go test -run TestChaosCompose ./chaos", os.Getenv("DURA_CHAOS_REPORT"))
}

// runSet runs scenarios one after another, logs the table and writes
// the report to out (if set); a failed invariant fails the test with its
// evidence.
func runSet(t *testing.T, names, workloads []string, duration time.Duration, base RunOptions, command, out string) {
	rep := NewReport(command)
	for _, name := range names {
		sc, ok := Scenarios[name]
		if !ok {
			t.Fatalf("unknown scenario %q; known: %v", name, Names())
		}
		t.Run(name, func(t *testing.T) {
			// Process faults run anywhere; only the network faults and
			// the small disk (a tmpfs mount) need root and namespaces.
			if base.Compose == "" && (sc.NeedsNet || sc.SmallDisk != "") {
				if why := NetAvailable(); why != "" {
					t.Skipf("scenario %s needs network namespaces or mounts (root, ip, iptables, tc): %s", name, why)
				}
			}
			start := time.Now()
			opt := base
			opt.Dir, opt.Duration, opt.Workloads = t.TempDir(), duration, workloads
			opt.Log = func(format string, args ...any) {
				t.Logf("%6.1fs "+format, append([]any{time.Since(start).Seconds()}, args...)...)
			}
			sr, err := Run(context.Background(), sc, opt)
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
