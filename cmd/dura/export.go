package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

func init() {
	commands["export"] = command{summary: "download an object's SQLite database", run: runExport}
	commands["import"] = command{summary: "replace an object's database with a SQLite file", run: runImport}
}

const exportSynopsis = `export [flags] CLASS/NAME [FILE|-]

Writes a consistent copy of the object's SQLite database to FILE (through
FILE.tmp, renamed when complete) or to stdout, which must not be a
terminal. There is no time limit unless --timeout is given, since
databases can be large.`

const importSynopsis = `import [flags] CLASS/NAME FILE|-

Replaces the object's database (SQL tables, KV and all) with the SQLite
file FILE, or stdin for -. The server checks the file first.`

func runExport(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "export", exportSynopsis)
	co := addClientFlagsTimeout(fs, 0)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageErr("want CLASS/NAME [FILE|-]")
	}
	class, name, err := splitObject(pos[0])
	if err != nil {
		return err
	}
	c := co.client()
	if len(pos) == 1 || pos[1] == "-" {
		if env.stdoutTTY {
			// A SQLite file is binary: on a screen it is noise, and it
			// can leave the terminal in a strange state.
			return usageErr("stdout is a terminal: give a FILE to write %s/%s to, or redirect stdout", class, name)
		}
		_, err := c.Export(ctx, class, name, env.stdout)
		return co.clientErr(err)
	}
	file := pos[1]
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	n, err := c.Export(ctx, class, name, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return co.clientErr(err)
	}
	fmt.Fprintf(env.stderr, "exported %s/%s to %s (%s)\n", class, name, file, humanBytes(n))
	return nil
}

func runImport(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "import", importSynopsis)
	co := addClientFlagsTimeout(fs, 0)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("want CLASS/NAME FILE|-")
	}
	class, name, err := splitObject(pos[0])
	if err != nil {
		return err
	}
	var r io.Reader = env.stdin
	if pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := co.client().Import(ctx, class, name, r); err != nil {
		return co.clientErr(err)
	}
	fmt.Fprintf(env.stderr, "imported %s into %s/%s\n", pos[1], class, name)
	return nil
}
