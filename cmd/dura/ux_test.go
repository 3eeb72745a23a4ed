package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestBareDuraIsAUsageError(t *testing.T) {
	r := runEnv(t, nil, "")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "Usage: dura COMMAND") {
		t.Fatalf("bare dura: %v", r)
	}
	for _, arg := range []string{"help", "-h", "--help"} {
		if r := runEnv(t, nil, "", arg); r.code != 0 || !strings.Contains(r.stdout, "Usage: dura COMMAND") {
			t.Fatalf("dura %s: %v", arg, r)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name, version, commit string
		want                  []string
	}{
		{"defaults", "", "", []string{"dura dev\n", "commit  dev\n"}},
		{"ldflags", "v1.2.3", "abc123", []string{"dura v1.2.3\n", "commit  abc123\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(v, c string) { version, commit = v, c }(version, commit)
			version, commit = tc.version, tc.commit
			r := must(t, runEnv(t, nil, "", "version"))
			want := append(tc.want, "go      "+runtime.Version()+" ", "sqlite  3.")
			for _, w := range want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("version output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	if r := runEnv(t, nil, "", "version", "extra"); r.code != 2 {
		t.Fatalf("version extra: %v", r)
	}
}

func TestExportRefusesATerminal(t *testing.T) {
	n := startNode(t, "")
	must(t, n.cli(t, "sql", "db/t", "CREATE TABLE a (x)"))
	vars := map[string]string{"DURA_ADDR": n.ts.URL}
	for _, args := range [][]string{{"export", "db/t"}, {"export", "db/t", "-"}} {
		r := runStreams(t, vars, "", true, args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "stdout is a terminal") {
			t.Fatalf("%q on a terminal: %v", args, r)
		}
	}
	// A file, or stdout that is not a terminal, still works.
	file := filepath.Join(t.TempDir(), "t.db")
	must(t, runStreams(t, vars, "", true, "export", "db/t", file))
	if b, err := os.ReadFile(file); err != nil || !strings.HasPrefix(string(b), "SQLite format 3") {
		t.Fatalf("export to a file: %v", err)
	}
	if r := must(t, n.cli(t, "export", "db/t")); !strings.HasPrefix(r.stdout, "SQLite format 3") {
		t.Fatalf("export to a pipe: %.40q", r.stdout)
	}
}

func TestSQLScriptFromAPipe(t *testing.T) {
	n := startNode(t, "")
	vars := map[string]string{"DURA_ADDR": n.ts.URL}
	script := "CREATE TABLE a (x);\nINSERT INTO a VALUES (1);\nSELECT nope FROM a;\nINSERT INTO a VALUES (2);\n"
	for _, tc := range []struct {
		name     string
		tty      bool
		code     int
		rows     string // rows of a after the run
		prompted bool
	}{
		// Piped in: no prompts; the first error stops the run, exit 1.
		{"pipe", false, 1, " 1\n", false},
		// A person at a terminal: prompts, and the session carries on.
		{"terminal", true, 0, " 1\n 2\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := "db/script-" + tc.name
			r := runStreams(t, vars, script, tc.tty, "sql", obj)
			if r.code != tc.code || !strings.Contains(r.stderr, "no such column: nope") {
				t.Fatalf("want exit %d after the error: %v", tc.code, r)
			}
			if got := strings.Contains(r.stdout, "dura "+obj+"> ") || strings.Contains(r.stdout, "Connected to"); got != tc.prompted {
				t.Fatalf("prompted %v, want %v:\n%s", got, tc.prompted, r.stdout)
			}
			rows := must(t, n.cli(t, "sql", obj, "SELECT x FROM a ORDER BY x")).stdout
			if !strings.Contains(rows, "---\n"+tc.rows+"(") {
				t.Fatalf("rows after the run:\n%s", rows)
			}
		})
	}
	// A clean script exits 0 and prints only its results.
	r := must(t, runEnv(t, vars, "SELECT 7 AS n;\n", "sql", "db/clean"))
	if !strings.HasPrefix(r.stdout, " n\n---\n 7\n(1 row") || strings.Count(r.stdout, "\n") != 4 {
		t.Fatalf("clean script output %q", r.stdout)
	}
}

func TestBenchHelpListsEveryScenario(t *testing.T) {
	r := runEnv(t, nil, "", "bench", "--help")
	if r.code != 0 {
		t.Fatalf("bench --help: %v", r)
	}
	u := runEnv(t, nil, "", "bench", "--scenario", "nosuch")
	for _, sc := range benchScenarios {
		if !strings.Contains(r.stderr, "\n  "+sc.name+" ") || !strings.Contains(r.stderr, sc.summary) {
			t.Errorf("bench --help does not list scenario %s:\n%s", sc.name, r.stderr)
		}
		if u.code != 2 || !strings.Contains(u.stderr, sc.name) {
			t.Errorf("unknown scenario error does not name %s: %v", sc.name, u)
		}
	}
}
