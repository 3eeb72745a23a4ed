package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["kv"] = command{summary: "read and write an object's key-value storage", run: runKV}
}

const kvSynopsis = `kv get|put|delete|list [flags] CLASS/NAME [KEY] [VALUE|-]

  get CLASS/NAME KEY          print the key's JSON value
  put CLASS/NAME KEY VALUE    store a JSON value ('"text"', 42, '{"a":1}'); - reads it from stdin
  delete CLASS/NAME KEY       remove the key
  list CLASS/NAME             print "key<TAB>value" lines (--prefix, --start, --start-after, --end, --limit, --reverse, --json)`

// maxKVValueBytes bounds a value read from stdin.
const maxKVValueBytes = 8 << 20

func runKV(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "kv", kvSynopsis)
	co := addClientFlags(fs)
	var o rpc.KVList
	fs.StringVar(&o.Prefix, "prefix", "", "list: only keys with this prefix")
	fs.StringVar(&o.Start, "start", "", "list: first key (inclusive)")
	fs.StringVar(&o.StartAfter, "start-after", "", "list: start after this key")
	fs.StringVar(&o.End, "end", "", "list: end before this key (exclusive)")
	fs.IntVar(&o.Limit, "limit", 0, "list: at most this many entries (0: no limit)")
	fs.BoolVar(&o.Reverse, "reverse", false, "list: in descending key order")
	asJSON := fs.Bool("json", false, "list: print the JSON answer")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageErr("want get|put|delete|list CLASS/NAME [KEY] [VALUE]")
	}
	verb := pos[0]
	class, name, err := splitObject(pos[1])
	if err != nil {
		return err
	}
	want := map[string]int{"get": 3, "put": 4, "delete": 3, "list": 2}
	n, ok := want[verb]
	if !ok {
		return usageErr("unknown action %q: want get, put, delete or list", verb)
	}
	if len(pos) != n {
		return usageErr("%s wants %d arguments after %q, got %d", verb, n-1, verb, len(pos)-1)
	}
	if o.Limit < 0 {
		return usageErr("--limit must not be negative")
	}
	c := co.client()
	switch verb {
	case "get":
		v, err := c.KVGet(ctx, class, name, pos[2])
		if err != nil {
			return co.clientErr(err)
		}
		fmt.Fprintf(env.stdout, "%s\n", bytes.TrimSpace(v))
	case "put":
		v := []byte(pos[3])
		if pos[3] == "-" {
			if v, err = readInput(env, "-", maxKVValueBytes); err != nil {
				return fmt.Errorf("reading the value from stdin: %w", err)
			}
		}
		v = bytes.TrimSpace(v)
		if !json.Valid(v) {
			return usageErr("the value must be JSON (a string needs quotes: '\"text\"'), got %q", abbreviate(string(v), 60))
		}
		if err := c.KVPut(ctx, class, name, pos[2], v); err != nil {
			return co.clientErr(err)
		}
	case "delete":
		existed, err := c.KVDelete(ctx, class, name, pos[2])
		if err != nil {
			return co.clientErr(err)
		}
		if existed {
			fmt.Fprintln(env.stdout, "deleted")
		} else {
			fmt.Fprintln(env.stdout, "no such key")
		}
	case "list":
		es, err := c.KVList(ctx, class, name, o)
		if err != nil {
			return co.clientErr(err)
		}
		if *asJSON {
			if es == nil {
				es = []rpc.KVEntry{}
			}
			b, err := json.Marshal(rpc.KVListResponse{Entries: es})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "%s\n", b)
			return nil
		}
		var buf bytes.Buffer
		for _, e := range es {
			var v bytes.Buffer
			if json.Compact(&v, e.Value) != nil {
				v.Reset()
				v.Write(e.Value)
			}
			fmt.Fprintf(&buf, "%s\t%s\n", e.Key, v.Bytes())
		}
		_, err = env.stdout.Write(buf.Bytes())
		return err
	}
	return nil
}

// abbreviate cuts s to n runes with an ellipsis.
func abbreviate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
