package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

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
	fmt.Fprintf(tw, "replication factor:\t%d\n", info.ReplicationFactor)
	fmt.Fprintf(tw, "under-replicated:\t%d\n", info.UnderReplicated)
	fmt.Fprintf(tw, "moves pending:\t%d\n", info.MovesPending)
	if h := info.History; h != nil {
		oldest := "-"
		if h.OldestRestorable > 0 {
			oldest = time.UnixMilli(h.OldestRestorable).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "history:\t%s kept here, %s, oldest restorable %s\n", h.Retention, humanBytes(h.Bytes), oldest)
	}
	if info.CatchingUp {
		fmt.Fprintf(tw, "state:\tcatching up with the cluster (epoch and partitions above are behind until then)\n")
	}
	tw.Flush()
	fmt.Fprintln(env.stdout)
	tw = newTabWriter(env.stdout)
	fmt.Fprintln(tw, "NAME\tHTTP\tSTATUS\tPRIMARIES\tREPLICAS")
	for _, m := range info.Members {
		status := m.Status
		if m.DataMissing {
			status += ", data missing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", m.Name, orDash(m.HTTP), status, m.Partitions, m.Replicas)
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
	} else {
		fmt.Fprintln(env.stdout, "ready: yes")
	}
	if info.MovingPartitions > 0 {
		fmt.Fprintf(env.stdout, "\nmoving: %d partitions are being handed off; requests for them wait until they are ready\n", info.MovingPartitions)
	}
	writeLagging(env.stdout, info)
	if info.UnavailablePartitions == 0 {
		return nil
	}
	fmt.Fprintf(env.stdout, "\nunavailable: %d of %d partitions have no live owner; their objects answer 503:\n", info.UnavailablePartitions, info.Partitions)
	for _, m := range info.Members {
		switch {
		case m.Partitions == 0:
		case m.DataMissing:
			fmt.Fprintf(env.stdout, "  %s came back without its data (%d partitions): restart it with its original data directory, or run 'dura node remove --force %s' (its data is lost)\n", m.Name, m.Partitions, m.Name)
		case m.Status == "dead" || m.Status == "suspect":
			fmt.Fprintf(env.stdout, "  %s is %s (%d partitions): restart it, or run 'dura node remove --force %s' to give them to the others (empty: its data is lost)\n", m.Name, m.Status, m.Partitions, m.Name)
		}
	}
	return fmt.Errorf("%d partitions unavailable", info.UnavailablePartitions)
}

// writeLagging lists the under-replicated partitions the answer names,
// with the copies each lacks.
func writeLagging(w io.Writer, info rpc.ClusterInfo) {
	if len(info.Lagging) == 0 {
		return
	}
	more := ""
	if info.UnderReplicated > len(info.Lagging) {
		more = fmt.Sprintf(" (the first %d)", len(info.Lagging))
	}
	fmt.Fprintf(w, "\nunder-replicated%s: fewer in-sync copies than the replication factor\n", more)
	for _, p := range info.Lagging {
		var behind []string
		for _, m := range p.Replicas {
			if !slices.Contains(p.InSync, m) {
				behind = append(behind, m)
			}
		}
		line := fmt.Sprintf("  partition %d: primary %s, in sync %s, behind %s", p.Partition, orDash(p.Primary),
			orDash(strings.Join(p.InSync, ",")), orDash(strings.Join(behind, ",")))
		if p.Target != "" {
			line += ", moving to " + p.Target
		}
		fmt.Fprintln(w, line)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
