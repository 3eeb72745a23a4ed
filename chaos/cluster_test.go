package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnexpectedExits: a node that exits on its own is recorded with its
// log tail; one the harness kills is not.
func TestUnexpectedExits(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name  string
		bin   string
		kill  bool
		exits int
	}{
		{"crashes", script("crash", "echo 'panic: boom'; exit 2"), false, 1},
		{"killed by the harness", script("long", "exec sleep 30"), true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{opt: ClusterOptions{Nodes: 1, Bin: tc.bin, Dir: t.TempDir()}}
			nd, err := c.newNode()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.start(0, true); err != nil {
				t.Fatal(err)
			}
			if tc.kill {
				if err := c.Kill(0); err != nil {
					t.Fatal(err)
				}
			}
			<-nd.done
			exits := c.UnexpectedExits()
			if len(exits) != tc.exits || tc.exits > 0 && !strings.Contains(exits[0], "panic: boom") {
				t.Fatalf("exits %q", exits)
			}
		})
	}
}
