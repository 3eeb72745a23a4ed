// Command dura runs a Dura node and talks to one: serve, sql, call, alarm,
// kv, status, export, import, bench. Run "dura help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/dura-dev/dura/server"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is what a subcommand may touch: streams and the environment, so
// tests can run commands in-process.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdinTTY and stdoutTTY say whether the streams are terminals: a
	// prompt is drawn only for a person, and binary output is not
	// written to a screen.
	stdinTTY, stdoutTTY bool
}

// commands is filled by the init functions of the files that define them.
var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		stdinTTY: isTerminal(os.Stdin), stdoutTTY: isTerminal(os.Stdout)}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 {
		// No command is a mistake (a script's empty variable, say): the
		// usage goes to stderr with the usage exit code.
		usage(env.stderr)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "dura: unknown command %q\n\n", args[0])
		usage(env.stderr)
		return 2
	}
	err := cmd.run(ctx, env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.stderr, "dura %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(env.stderr, "dura %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage is server's, so a usage error of serve exits 2 like the others.
var errUsage = server.ErrUsage

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "dura: durable objects with SQLite storage, on your own cluster.")
	fmt.Fprintln(w, "\nUsage: dura COMMAND [flags] [args]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nCLASS/NAME is URL-path-escaped alike in every command: write a '/' in a name")
	fmt.Fprintln(w, "as %2F (call needs it: its PATH follows the name) and a '%' as %25.")
	fmt.Fprintln(w, "\nRun \"dura COMMAND --help\" for a command's flags.")
}

// newFlagSet makes a flag set whose every flag can also come from the
// environment as DURA_<NAME> (dashes become underscores); call
// applyEnv after defining the flags and before Parse.
func newFlagSet(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: dura %s\n\nFlags (each also DURA_<NAME> in the environment):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags applies DURA_<NAME> environment values, then the arguments
// (which win).
func parseFlags(fs *flag.FlagSet, env *cliEnv, args []string) error {
	if err := server.ApplyEnv(fs, env.getenv); err != nil {
		return err
	}
	// Client commands run beside a node (in its container) take the
	// node's own admin token when given none.
	if f := fs.Lookup("token"); f != nil && f.Value.String() == "" && fs.Lookup("admin-token") == nil {
		if v, _, _ := strings.Cut(env.getenv("DURA_ADMIN_TOKEN"), ","); v != "" {
			fs.Set("token", v)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
