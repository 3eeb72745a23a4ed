package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"
)

func init() {
	commands["alarm"] = command{summary: "show, set or delete an object's alarm", run: runAlarm}
}

const alarmSynopsis = `alarm get|set|delete [flags] CLASS/NAME
       alarm list [--before TIME] [--limit N] [--all]

  get     print the alarm (RFC3339 and unix ms) or "no alarm"
  set     schedule it: --at TIME (RFC3339 or unix ms) or --in DURATION (30s, 5m, 2h)
  delete  cancel it
  list    the scheduled alarms of the whole cluster, soonest first`

func runAlarm(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "alarm", alarmSynopsis)
	co := addClientFlags(fs)
	at := fs.String("at", "", "set: when, as RFC3339 (2025-01-02T15:04:05Z) or unix milliseconds")
	in := fs.Duration("in", 0, "set: how long from now (30s, 5m, 2h)")
	before := fs.String("before", "", "list: only alarms due before this time (RFC3339 or unix ms)")
	limit := fs.Int("limit", 100, "list: alarms per page (1..1000)")
	all := fs.Bool("all", false, "list: follow the cursor to the end")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == "list" {
		var beforeMS int64
		if *before != "" {
			if beforeMS, err = parseAlarmTime(*before); err != nil {
				return usageErr("--before: %v", err)
			}
		}
		return listAlarms(ctx, env, co, beforeMS, *limit, *all)
	}
	if len(pos) != 2 {
		return usageErr("want get|set|delete CLASS/NAME, or list")
	}
	verb := pos[0]
	class, name, err := splitObject(pos[1])
	if err != nil {
		return err
	}
	inSet := false
	fs.Visit(func(f *flag.Flag) { inSet = inSet || f.Name == "in" })
	if verb != "set" && (*at != "" || inSet) {
		return usageErr("--at and --in go with set")
	}
	c := co.client()
	switch verb {
	case "get":
		ms, err := c.GetAlarm(ctx, class, name)
		if err != nil {
			return co.clientErr(err)
		}
		fmt.Fprintln(env.stdout, formatAlarm(ms))
	case "set":
		var when int64
		switch {
		case *at != "" && inSet:
			return usageErr("give --at or --in, not both")
		case *at != "":
			if when, err = parseAlarmTime(*at); err != nil {
				return usageErr("--at: %v", err)
			}
		case inSet:
			when = time.Now().Add(*in).UnixMilli()
		default:
			return usageErr("set needs --at TIME or --in DURATION")
		}
		if when < 0 {
			return usageErr("the alarm time is before 1970")
		}
		if err := c.SetAlarm(ctx, class, name, when); err != nil {
			return co.clientErr(err)
		}
		fmt.Fprintln(env.stdout, formatAlarm(&when))
	case "delete":
		if err := c.DeleteAlarm(ctx, class, name); err != nil {
			return co.clientErr(err)
		}
		fmt.Fprintln(env.stdout, formatAlarm(nil))
	default:
		return usageErr("unknown action %q: want get, set or delete", verb)
	}
	return nil
}

// parseAlarmTime reads unix milliseconds or an RFC3339 time.
func parseAlarmTime(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC3339 (2025-01-02T15:04:05Z) nor unix milliseconds", s)
	}
	return t.UnixMilli(), nil
}

// listAlarms prints the scheduled alarms as a table.
func listAlarms(ctx context.Context, env *cliEnv, co *clientOpts, before int64, limit int, all bool) error {
	c := co.client()
	cursor := ""
	fmt.Fprintf(env.stdout, "%-24s  %-5s  %-20s  %-30s  %s\n", "AT", "RETRY", "CLASS", "NAME", "ID")
	for {
		page, err := c.ListAlarms(ctx, before, cursor, limit)
		if err != nil {
			return co.clientErr(err)
		}
		for _, a := range page.Alarms {
			fmt.Fprintf(env.stdout, "%-24s  %-5d  %-20s  %-30s  %s\n", time.UnixMilli(a.At).UTC().Format(time.RFC3339Nano), a.Retry, a.Class, a.Name, a.ID[:12])
		}
		if page.Cursor == "" || !all {
			if page.Cursor != "" {
				fmt.Fprintf(env.stderr, "(more: --all)\n")
			}
			return nil
		}
		cursor = page.Cursor
	}
}
