package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["bookmark"] = command{summary: "name an object's latest commit, or its commit at a time", run: runBookmark}
	commands["restore"] = command{summary: "bring an object back to a time or a bookmark (undoable)", run: runRestore}
}

const bookmarkSynopsis = `bookmark [--at TIME] [--json] [flags] CLASS/NAME

Prints the bookmark of the object's latest commit, or with --at of its last
commit at or before TIME (RFC 3339, unix milliseconds, or a duration ago
such as 10m or 2h30m). Bookmarks of one object sort in commit order.`

const restoreSynopsis = `restore (--at TIME | --bookmark B) [--json] [flags] CLASS/NAME

Brings the object's SQL tables, KV and alarm back to what they were at TIME
(RFC 3339, unix milliseconds, or a duration ago such as 10m) or at bookmark
B, as a new commit: it prints the bookmark to restore to undo it.`

// parseWhen reads a time as RFC 3339, unix milliseconds, or a duration
// before now.
func parseWhen(s string, now time.Time) (int64, error) {
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d > 0 {
		return now.Add(-d).UnixMilli(), nil
	}
	ms, err := parseAlarmTime(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not RFC 3339 (2025-01-02T15:04:05Z), unix milliseconds, or a duration ago (10m)", s)
	}
	return ms, nil
}

func fmtBookmarkTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

func runBookmark(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "bookmark", bookmarkSynopsis)
	co := addClientFlags(fs)
	at := fs.String("at", "", "the time to name the commit of (default: the latest commit)")
	asJSON := fs.Bool("json", false, `print the API's JSON answer: {"bookmark","at"}`)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	class, name, err := oneObject(pos)
	if err != nil {
		return err
	}
	var when time.Time
	if *at != "" {
		ms, err := parseWhen(*at, time.Now())
		if err != nil {
			return usageErr("--at: %v", err)
		}
		when = time.UnixMilli(ms)
	}
	b, err := co.client().Bookmark(ctx, class, name, when)
	if err != nil {
		return co.clientErr(err)
	}
	if *asJSON {
		return printJSON(env.stdout, b)
	}
	fmt.Fprintf(env.stdout, "%s\t(committed %s)\n", b.Bookmark, fmtBookmarkTime(b.At))
	return nil
}

func runRestore(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "restore", restoreSynopsis)
	co := addClientFlags(fs)
	at := fs.String("at", "", "the time to bring the object back to")
	bookmark := fs.String("bookmark", "", "the bookmark to bring the object back to")
	asJSON := fs.Bool("json", false, `print the API's JSON answer: {"restored_to","undo_bookmark"}`)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	class, name, err := oneObject(pos)
	if err != nil {
		return err
	}
	if (*at == "") == (*bookmark == "") {
		return usageErr("give one of --at TIME and --bookmark B")
	}
	req := rpc.RestoreRequest{Bookmark: *bookmark}
	if *at != "" {
		ms, err := parseWhen(*at, time.Now())
		if err != nil {
			return usageErr("--at: %v", err)
		}
		req.At = &ms
	}
	res, err := co.client().Restore(ctx, class, name, req)
	if err != nil {
		return co.clientErr(err)
	}
	if *asJSON {
		return printJSON(env.stdout, res)
	}
	fmt.Fprintf(env.stdout, "restored %s/%s to %s\nundo with: dura restore %s/%s --bookmark %s\n", class, name, res.RestoredTo, class, name, res.UndoBookmark)
	return nil
}
