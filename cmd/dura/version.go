package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/mattn/go-sqlite3"
)

func init() {
	commands["version"] = command{summary: "print the version, commit, Go and SQLite versions", run: runVersion}
}

// Set at build time, for release builds:
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/dura
//
// Left empty, they come from the module and VCS information Go records in
// the binary, else "dev".
var version, commit string

// buildVersion is the version and commit of this binary.
func buildVersion() (v, c string) {
	v, c = version, commit
	info, ok := debug.ReadBuildInfo()
	if ok && v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if ok && c == "" {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			c = rev
			if modified == "true" {
				c += " (modified)"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "dev"
	}
	return v, c
}

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "version", "version")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	v, c := buildVersion()
	sqlite, _, _ := sqlite3.Version()
	fmt.Fprintf(env.stdout, "dura %s\ncommit  %s\ngo      %s %s/%s\nsqlite  %s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH, sqlite)
	return nil
}
