package main

import (
	"context"
	"fmt"
)

func init() {
	commands["health"] = command{summary: "exit 0 if the node is live (or, with --ready, ready)", run: runHealth}
}

const healthSynopsis = `health [--ready] [flags]

Exits 0 if /healthz (with --ready: /readyz) answers 200, else prints why
and exits 1. For container health checks: images without curl have dura.`

func runHealth(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "health", healthSynopsis)
	co := addClientFlags(fs)
	ready := fs.Bool("ready", false, "check readiness (/readyz) instead of liveness (/healthz)")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected arguments %q", pos)
	}
	c := co.client()
	check, what := c.Health, "live"
	if *ready {
		check, what = c.Ready, "ready"
	}
	if err := check(ctx); err != nil {
		return fmt.Errorf("not %s: %w", what, co.clientErr(err))
	}
	fmt.Fprintf(env.stdout, "%s: %s\n", co.addr, what)
	return nil
}
