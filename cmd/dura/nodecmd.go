package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["node"] = command{summary: "manage cluster members: node remove --force NAME", run: runNode}
}

const nodeSynopsis = `node remove --force [flags] NAME

Takes a crashed member out of the cluster for good. Its partitions are
reassigned to the other members EMPTY: what only it held is lost. The
cluster first waits out the member's lease (10 s) so it cannot still be
serving. A member that is alive is refused: stop it, and it leaves
gracefully, handing its data off. A member stopped a moment ago is not
yet declared dead by gossip; the command waits for that (--wait), saying
so.`

func runNode(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] != "remove" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(env.stderr, "Usage: dura "+nodeSynopsis)
			return nil
		}
		return usageErr("usage: dura node remove --force NAME")
	}
	fs := newFlagSet(env, "node remove", nodeSynopsis)
	co := addClientFlags(fs)
	force := fs.Bool("force", false, "confirm that the member's data may be lost")
	wait := fs.Duration("wait", time.Minute, "how long to wait for a member stopped a moment ago to be declared dead")
	pos, err := parseArgs(fs, env, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("give exactly one member name")
	}
	if !*force {
		return usageErr("removing %s loses the data only it holds; repeat with --force", pos[0])
	}
	if co.timeout > 0 && co.timeout < time.Minute {
		co.timeout = time.Minute // the cluster waits out the member's lease first
	}
	path := "/v1/cluster/members/" + url.PathEscape(pos[0]) + "/remove?force=true"
	start := time.Now()
	for {
		resp, err := co.client().Do(ctx, http.MethodPost, path, nil, nil)
		var ae *rpc.APIError
		if errors.As(err, &ae) && ae.Code == "CONSTRAINT" && strings.Contains(ae.Message, "not yet declared dead") && time.Since(start) < *wait {
			// Stopped a moment ago: gossip has not declared it dead yet.
			fmt.Fprintf(env.stderr, "waiting for %s to be declared dead (%s so far; %s)\n", pos[0], time.Since(start).Round(time.Second), ae.Message)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
			continue
		}
		if err != nil {
			return co.clientErr(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		break
	}
	fmt.Fprintf(env.stdout, "removed %s; its partitions were reassigned\n", pos[0])
	return nil
}
