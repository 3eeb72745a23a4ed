package main

import (
	"context"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/server"
)

func init() {
	commands["serve"] = command{summary: "run a node (a one-node cluster by default)", run: runServe}
}

// runServe runs a node with every example class registered; package
// server owns the flags and the wiring.
func runServe(ctx context.Context, env *cliEnv, args []string) error {
	cfg, err := server.ParseFlags("dura serve [flags]", args, env.getenv, env.stderr)
	if err != nil {
		return err
	}
	cfg.Output = env.stderr
	return server.Run(ctx, cfg, examples.RegisterAll)
}
