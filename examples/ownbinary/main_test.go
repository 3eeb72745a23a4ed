package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// proc is one running node of this program.
type proc struct {
	addr string
	done chan error
	mu   sync.Mutex
	logs strings.Builder
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// launch runs bin with args and waits until it says where it serves.
func launch(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if _, rest, ok := strings.Cut(sc.Text(), "serving on http://"); ok {
				addrc <- strings.Fields(rest)[0]
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-addrc:
	case err := <-p.done:
		t.Fatalf("exited early: %v\n%s", err, p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("did not start\n%s", p.log())
	}
	return p
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

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
	seed := freeAddr(t)
	var nodes []*proc
	for i := range 3 {
		args := []string{"--name", fmt.Sprint("n", i+1), "--data", t.TempDir(), "--http", "127.0.0.1:0",
			"--raft", freeAddr(t), "--bootstrap-expect", "3", "--log-level", "warn"}
		if i == 0 {
			args = append(args, "--gossip", seed)
		} else {
			args = append(args, "--gossip", freeAddr(t), "--join", seed)
		}
		nodes = append(nodes, launch(t, bin, args...))
	}
	ctx := context.Background()
	for _, n := range nodes {
		c := rpc.NewClient("http://"+n.addr, nil)
		testutil.Poll(t, 60*time.Second, n.addr+" ready", func() string {
			if err := c.Ready(ctx); err != nil {
				return fmt.Sprintf("%v\n%s", err, n.log())
			}
			return ""
		})
	}
	executors := map[string]bool{}
	for i := range 6 {
		name := fmt.Sprint("poll", i)
		for j, n := range nodes {
			c := rpc.NewClient("http://"+n.addr, nil)
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
	resp, err := rpc.NewClient("http://"+nodes[2].addr, nil).Call(ctx, "POST", "counter", "c", "/increment", nil)
	if err != nil {
		t.Fatalf("built-in counter: %v", err)
	}
	resp.Body.Close()
}
