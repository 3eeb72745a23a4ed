package replication

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dura-dev/dura/internal/apierr"
)

func applyCmd(t *testing.T, f *clusterFSM, c Command) error {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: f.applied.Load() + 1, Data: b})
	if err, ok := res.(error); ok {
		return err
	}
	return nil
}

func TestModuleCommands(t *testing.T) {
	var seen [][]Module
	f := &clusterFSM{state: &ClusterState{}, onModules: func(ms []Module) { seen = append(seen, ms) }}
	put := func(name string, classes ...string) Command {
		return Command{Kind: CmdPutModule, Module: &Module{Name: name, Source: "src of " + name, Classes: classes, Version: 99}}
	}
	cases := []struct {
		name     string
		cmd      Command
		err      error
		versions map[string]int
	}{
		{"first deploy is version 1", put("a", "A1", "A2"), nil, map[string]int{"a": 1}},
		{"a new version", put("a", "A1"), nil, map[string]int{"a": 2}},
		{"another module", put("b", "B"), nil, map[string]int{"a": 2, "b": 1}},
		{"a class of another module", put("c", "B"), apierr.ErrConflict, map[string]int{"a": 2, "b": 1}},
		{"a class the new version of a dropped", put("c", "A2"), nil, map[string]int{"a": 2, "b": 1, "c": 1}},
		{"no module", Command{Kind: CmdPutModule}, apierr.ErrBadRequest, map[string]int{"a": 2, "b": 1, "c": 1}},
		{"delete", Command{Kind: CmdDeleteModule, Name: "a"}, nil, map[string]int{"b": 1, "c": 1}},
		{"delete of nothing", Command{Kind: CmdDeleteModule, Name: "zzz"}, nil, map[string]int{"b": 1, "c": 1}},
		{"put after delete starts again", put("a", "A1"), nil, map[string]int{"a": 1, "b": 1, "c": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(seen)
			err := applyCmd(t, f, c.cmd)
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			got := map[string]int{}
			for _, m := range f.modules.list() {
				got[m.Name] = m.Version
			}
			if !reflect.DeepEqual(got, c.versions) {
				t.Fatalf("versions %v, want %v", got, c.versions)
			}
			if c.err == nil && len(seen) != n+1 {
				t.Fatalf("OnModules not called")
			}
		})
	}
	// A snapshot carries the modules to a node that restores it.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := &clusterFSM{state: &ClusterState{}, onModules: func(ms []Module) { seen = append(seen, ms) }}
	if err := g.Restore(io.NopCloser(strings.NewReader(string(snap.(jsonSnapshot))))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.modules.list(), f.modules.list()) || !reflect.DeepEqual(seen[len(seen)-1], f.modules.list()) {
		t.Fatalf("restored %+v, want %+v", g.modules.list(), f.modules.list())
	}
}
