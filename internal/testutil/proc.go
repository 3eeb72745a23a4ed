package testutil

import (
	"bufio"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is a node process a test started: a dura binary, or a program
// built on package server, that says "serving on http://ADDR" on stderr.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string     // host:port it serves HTTP on
	Done chan error // receives the process's exit, once

	mu   sync.Mutex
	logs strings.Builder
}

// Launch starts bin with args and waits, up to a minute, until it says
// where it serves. The process is killed when the test ends.
func Launch(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, Done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if _, rest, ok := strings.Cut(line, "serving on http://"); ok {
				addrc <- strings.Fields(rest)[0]
			}
		}
		p.Done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.Done
		}
	})
	select {
	case p.Addr = <-addrc:
	case err := <-p.Done:
		t.Fatalf("%s exited early: %v\n%s", bin, err, p.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start\n%s", bin, p.Log())
	}
	return p
}

// Log is what the process wrote to stderr so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// FreeAddr is a loopback address with a port free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
