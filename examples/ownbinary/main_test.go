package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// TestThreeNodesOfOwnBinary builds this program, runs it as three
// processes forming a cluster and votes on tallies through every node:
// each vote lands on the object's one owner, whichever node took it.
func TestThreeNodesOfOwnBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts real processes")
	}
	bin := filepath.Join(t.TempDir(), "tally")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	seed := testutil.FreeAddr(t)
	var nodes []*testutil.Proc
	for i := range 3 {
		args := []string{"--name", fmt.Sprint("n", i+1), "--data", t.TempDir(), "--http", "127.0.0.1:0",
			"--raft", testutil.FreeAddr(t), "--bootstrap-expect", "3", "--log-level", "warn"}
		if i == 0 {
			args = append(args, "--gossip", seed)
		} else {
			args = append(args, "--gossip", testutil.FreeAddr(t), "--join", seed)
		}
		nodes = append(nodes, testutil.Launch(t, bin, args...))
	}
	ctx := context.Background()
	for _, n := range nodes {
		c := rpc.NewClient("http://"+n.Addr, nil)
		testutil.Poll(t, 60*time.Second, n.Addr+" ready", func() string {
			if err := c.Ready(ctx); err != nil {
				return fmt.Sprintf("%v\n%s", err, n.Log())
			}
			return ""
		})
	}
	executors := map[string]bool{}
	for i := range 6 {
		name := fmt.Sprint("poll", i)
		for j, n := range nodes {
			c := rpc.NewClient("http://"+n.Addr, nil)
			resp, err := c.Call(ctx, "POST", "tally", name, "/vote?option=pizza", nil)
			if err != nil {
				t.Fatalf("vote on %s through n%d: %v", name, j+1, err)
			}
			var v struct{ Votes int64 }
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			executors[resp.Header.Get(rpc.HeaderNode)] = true
			if v.Votes != int64(j+1) {
				t.Fatalf("vote %d on %s through n%d counted %d", j+1, name, j+1, v.Votes)
			}
		}
	}
	if len(executors) < 2 {
		t.Fatalf("tallies ran on %v only: nothing was forwarded", executors)
	}
	// The built-in classes are there too.
	resp, err := rpc.NewClient("http://"+nodes[2].Addr, nil).Call(ctx, "POST", "counter", "c", "/increment", nil)
	if err != nil {
		t.Fatalf("built-in counter: %v", err)
	}
	resp.Body.Close()
}
