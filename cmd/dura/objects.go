package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["objects"] = command{summary: "list the objects of the cluster", run: runObjects}
}

const objectsSynopsis = `objects [--class C] [--limit N] [--all] [--cursor C] [--json] [flags]

Lists objects (ID, CLASS, NAME, PARTITION, SIZE, ALARM) a page at a time;
--all follows the cursors to the end.`

func runObjects(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "objects", objectsSynopsis)
	co := addClientFlags(fs)
	class := fs.String("class", "", "only objects of this class")
	limit := fs.Int("limit", 100, "objects per page (1..1000)")
	all := fs.Bool("all", false, "list every page, not just the first")
	cursor := fs.String("cursor", "", "start at this cursor (from a previous page)")
	asJSON := fs.Bool("json", false, "print JSON: {\"objects\":[...],\"cursor\":...}")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected arguments %q", pos)
	}
	if *limit < 1 || *limit > 1000 {
		return usageErr("--limit must be 1..1000")
	}
	c := co.client()
	list := rpc.ObjectList{Objects: []rpc.ObjectInfo{}}
	next := *cursor
	for {
		page, err := c.ListObjects(ctx, *class, next, *limit)
		if err != nil {
			return co.clientErr(err)
		}
		list.Objects = append(list.Objects, page.Objects...)
		list.Unavailable = mergeNames(list.Unavailable, page.Unavailable)
		next = page.Cursor
		if !*all || next == "" || len(page.Objects) == 0 {
			break
		}
	}
	if *all {
		next = ""
	}
	list.Cursor = next
	if len(list.Unavailable) > 0 {
		fmt.Fprintf(env.stderr, "warning: the list lacks the objects of %s (unreachable now)\n", strings.Join(list.Unavailable, ", "))
	}
	if *asJSON {
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s\n", b)
		return nil
	}
	tw := newTabWriter(env.stdout)
	fmt.Fprintln(tw, "ID\tCLASS\tNAME\tPARTITION\tSIZE\tALARM")
	for _, o := range list.Objects {
		id := o.ID
		if len(id) > 12 {
			id = id[:12]
		}
		alarm := "-"
		if o.Alarm != nil {
			alarm = shortTime(*o.Alarm)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", id, o.Class, formatValue(o.Name), o.Partition, humanBytes(o.SizeBytes), alarm)
	}
	tw.Flush()
	if next != "" {
		fmt.Fprintf(env.stderr, "(more: --cursor %s, or --all)\n", next)
	}
	return nil
}

// mergeNames adds the names of more missing from names, sorted.
func mergeNames(names, more []string) []string {
	for _, n := range more {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
