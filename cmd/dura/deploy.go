package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func init() {
	commands["deploy"] = command{summary: "deploy a JavaScript or TypeScript module of classes", run: runDeploy}
	commands["modules"] = command{summary: "list the deployed JavaScript modules", run: runModules}
}

const deploySynopsis = `deploy FILE [--module NAME] [flags]

Uploads FILE, an ES module in TypeScript (.ts, .mts) or JavaScript (.js,
.mjs), to the cluster. Every exported class extending DurableObject
becomes a class of that name on every node; a new version of a module
resets the live objects of its classes (their storage stays). The module
is named after the file unless --module says otherwise.`

func runDeploy(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "deploy", deploySynopsis)
	co := addClientFlags(fs)
	module := fs.String("module", "", "module name (default: the file's base name without its extension)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("deploy takes one FILE")
	}
	src, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	ext := filepath.Ext(pos[0])
	name := *module
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(pos[0]), ext)
	}
	js := ext == ".js" || ext == ".mjs" || ext == ".cjs"
	info, err := co.client().Deploy(ctx, name, src, js)
	if err != nil {
		return co.clientErr(err)
	}
	if *asJSON {
		b, _ := json.Marshal(info)
		fmt.Fprintf(env.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(env.stdout, "deployed %s version %d: %s\n", info.Module, info.Version, strings.Join(info.Classes, ", "))
	return nil
}

const modulesSynopsis = `modules [--json] [flags]

Lists the deployed modules: name, version, classes, size and deploy time.`

func runModules(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "modules", modulesSynopsis)
	co := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON: {\"modules\":[...]}")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected arguments %q", pos)
	}
	list, err := co.client().Modules(ctx)
	if err != nil {
		return co.clientErr(err)
	}
	if *asJSON {
		b, _ := json.Marshal(map[string]any{"modules": list})
		fmt.Fprintf(env.stdout, "%s\n", b)
		return nil
	}
	tw := newTabWriter(env.stdout)
	fmt.Fprintln(tw, "MODULE\tVERSION\tCLASSES\tBYTES\tDEPLOYED")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", m.Module, m.Version, strings.Join(m.Classes, ","), m.Bytes,
			time.UnixMilli(m.DeployedAt).UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
