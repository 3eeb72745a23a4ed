package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["status"] = command{summary: "show the cluster as a node sees it, and whether it is ready", run: runStatus}
}

const statusSynopsis = `status [flags]

Prints /v1/cluster (node, leader, epoch, partitions and the members) and
whether the node is ready (/readyz). --json prints /v1/cluster's JSON.`

func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "status", statusSynopsis)
	co := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the JSON of /v1/cluster")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected arguments %q", pos)
	}
	c := co.client()
	if *asJSON {
		resp, err := c.Do(ctx, http.MethodGet, "/v1/cluster", nil, nil)
		if err != nil {
			return co.clientErr(err)
		}
		defer resp.Body.Close()
		_, err = io.Copy(env.stdout, resp.Body)
		return err
	}
	info, err := c.Cluster(ctx)
	if err != nil {
		return co.clientErr(err)
	}
	tw := newTabWriter(env.stdout)
	fmt.Fprintf(tw, "node:\t%s\n", info.Node)
	fmt.Fprintf(tw, "leader:\t%s\n", orDash(info.Leader))
	fmt.Fprintf(tw, "epoch:\t%d\n", info.Epoch)
	fmt.Fprintf(tw, "partitions:\t%d\n", info.Partitions)
	tw.Flush()
	fmt.Fprintln(env.stdout)
	tw = newTabWriter(env.stdout)
	fmt.Fprintln(tw, "NAME\tHTTP\tSTATUS\tPARTITIONS")
	for _, m := range info.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", m.Name, orDash(m.HTTP), m.Status, m.Partitions)
	}
	tw.Flush()
	fmt.Fprintln(env.stdout)
	if err := c.Ready(ctx); err != nil {
		var ae *rpc.APIError
		if errors.As(err, &ae) {
			fmt.Fprintf(env.stdout, "ready: no (%s: %s)\n", ae.Code, ae.Message)
		} else {
			fmt.Fprintf(env.stdout, "ready: no (%v)\n", co.clientErr(err))
		}
		return nil
	}
	fmt.Fprintln(env.stdout, "ready: yes")
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
