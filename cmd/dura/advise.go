package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["advise"] = command{summary: "review an object's statements and schema for data-modelling mistakes", run: runAdvise}
	commands["explain"] = command{summary: "show the query plan of a statement without running it", run: runExplain}
}

const adviseSynopsis = `advise [--json] [flags] CLASS/NAME

Reviews the statements the object ran since it was activated, and its
schema, for the mistakes that make objects slow (missing indexes, SELECT *,
N+1 queries, unbounded queries, foreign keys without an index, sorts
without an index, large rows) and prints each finding with its evidence
and the change to make. Activates the object if needed.`

const explainSynopsis = `explain [--param V]... [--json] [flags] CLASS/NAME SQL

Prints SQLite's query plan of one statement, which is not run, and the
findings the plan gives. --param works as in sql.`

func runAdvise(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "advise", adviseSynopsis)
	co := addClientFlags(fs)
	asJSON := fs.Bool("json", false, `print the API's JSON answer: {"findings":[...]}`)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	class, name, err := oneObject(pos)
	if err != nil {
		return err
	}
	adv, err := co.client().Advice(ctx, class, name)
	if err != nil {
		return co.clientErr(err)
	}
	if *asJSON {
		return printJSON(env.stdout, adv)
	}
	if len(adv.Findings) == 0 {
		fmt.Fprintf(env.stdout, "no findings for %s/%s\n", class, name)
		return nil
	}
	printFindings(env.stdout, adv.Findings)
	return nil
}

func runExplain(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "explain", explainSynopsis)
	co := addClientFlags(fs)
	var params stringList
	fs.Var(&params, "param", "a parameter, as a JSON literal (repeatable)")
	asJSON := fs.Bool("json", false, `print the API's JSON answer: {"plan":[...],"findings":[...]}`)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("want CLASS/NAME SQL, got %d arguments", len(pos))
	}
	class, name, err := splitObject(pos[0])
	if err != nil {
		return err
	}
	ps := make([]any, len(params))
	for i, p := range params {
		ps[i] = parseParam(p)
	}
	res, err := co.client().Explain(ctx, class, name, rpc.Statement{SQL: pos[1], Params: ps})
	if err != nil {
		return co.clientErr(err)
	}
	if *asJSON {
		return printJSON(env.stdout, res)
	}
	// The plan is a tree: each step indented under its parent.
	depth := map[int64]int{}
	fmt.Fprintln(env.stdout, "QUERY PLAN")
	for _, p := range res.Plan {
		d := depth[p.Parent] + 1
		depth[p.ID] = d
		fmt.Fprintf(env.stdout, "%s`--%s\n", strings.Repeat("   ", d-1), p.Detail)
	}
	if len(res.Findings) > 0 {
		fmt.Fprintln(env.stdout)
		printFindings(env.stdout, res.Findings)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", b)
	return nil
}

// printFindings writes one block per finding: the rule and where, the
// statement, the evidence, and what to do.
func printFindings(w io.Writer, fs []rpc.Finding) {
	for i, f := range fs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		where := f.Table
		if where == "" {
			where = "-"
		}
		fmt.Fprintf(w, "%s  %s  table %s\n", strings.ToUpper(f.Severity), f.Rule, where)
		if f.Statement != "" {
			fmt.Fprintf(w, "  statement:  %s\n", f.Statement)
		}
		keys := make([]string, 0, len(f.Evidence))
		for k := range f.Evidence {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ev := make([]string, len(keys))
		for j, k := range keys {
			ev[j] = fmt.Sprintf("%s=%d", k, f.Evidence[k])
		}
		fmt.Fprintf(w, "  evidence:   %s\n", strings.Join(ev, " "))
		fmt.Fprintf(w, "  suggestion: %s\n", f.Suggestion)
	}
}
