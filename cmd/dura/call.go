package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["call"] = command{summary: "send a request to an object's handler (like curl)", run: runCall}
}

const callSynopsis = `call [-X METHOD] [-d BODY|@FILE|-] [-H 'K: V']... [-i] CLASS/NAME[/PATH][?QUERY]

Sends a request to /objects/CLASS/NAME/PATH, the object's own handler, and
prints the response body. NAME is one path segment here: write a '/' in it
as %2F. The method is GET, or POST with -d. -i also prints the status line
and the headers (X-Dura-Node names the node that ran the event).`

// maxCallBodyBytes bounds a -d body read from a file or stdin.
const maxCallBodyBytes = 64 << 20

func runCall(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "call", callSynopsis)
	co := addClientFlags(fs)
	method := fs.String("X", "", "request method (default GET, or POST with -d)")
	data := fs.String("d", "", "request body: text, @FILE, or - for stdin")
	var headers stringList
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	include := fs.Bool("i", false, "print the status line and response headers too")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one CLASS/NAME[/PATH][?QUERY], got %d arguments", len(pos))
	}
	class, name, path, err := parseCallTarget(pos[0])
	if err != nil {
		return err
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return usageErr("-H %q is not 'Name: value'", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	dataSet := false
	fs.Visit(func(f *flag.Flag) { dataSet = dataSet || f.Name == "d" })
	var body io.Reader
	if dataSet {
		b := []byte(*data)
		if *data == "-" || strings.HasPrefix(*data, "@") {
			src := strings.TrimPrefix(*data, "@")
			if b, err = readInput(env, src, maxCallBodyBytes); err != nil {
				return fmt.Errorf("-d %s: %w", *data, err)
			}
		}
		if h.Get("Content-Type") == "" && json.Valid(b) {
			h.Set("Content-Type", "application/json")
		}
		body = bytes.NewReader(b)
	}
	m := strings.ToUpper(*method)
	if m == "" {
		m = http.MethodGet
		if dataSet {
			m = http.MethodPost
		}
	}
	c := co.client()
	resp, err := c.Do(ctx, m, "/objects"+rpc.ObjectPath(class, name)+path, body, h)
	if err != nil {
		return co.clientErr(err)
	}
	defer resp.Body.Close()
	if *include {
		writeHead(env.stdout, resp)
	}
	if _, err := io.Copy(env.stdout, resp.Body); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

func writeHead(w io.Writer, resp *http.Response) {
	fmt.Fprintf(w, "%s %s\n", resp.Proto, resp.Status)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
}
