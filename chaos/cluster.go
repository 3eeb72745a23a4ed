package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dura-dev/dura/internal/freeport"
	"github.com/dura-dev/dura/rpc"
)

// ClusterOptions describe the dura processes a scenario runs.
type ClusterOptions struct {
	Nodes  int    // founding members (bootstrap-expect)
	Bin    string // the dura binary
	Dir    string // data directories go under it
	Secret string // cluster secret
	Token  string // admin token
	// Net, if set, runs each node in its own namespace of it; nil runs
	// them on loopback (only process faults then).
	Net *Net
	// SmallDisk, if set, mounts a tmpfs of this size (e.g. "48m") as the
	// data directory of node SmallDiskNode.
	SmallDisk     string
	SmallDiskNode int
	// Extra flags for every node's "dura serve".
	Extra []string
	// DebugPorts, if set, gives node i pprof on 127.0.0.1:DebugPorts+i.
	DebugPorts int
}

// Node is one dura process (and its data, across restarts).
type Node struct {
	Index         int
	Name          string
	Dir           string
	HTTP, Gossip  string
	Raft          string
	mu            sync.Mutex
	cmd           *exec.Cmd
	done          chan struct{}
	running       bool
	paused        bool
	startedOnce   bool
	mounted       bool
	expectExit    bool // the harness stopped it; any other exit is a finding
	exitErr       error
	hc            *http.Client // the workloads' client (see Cluster.do)
	client, admin *rpc.Client
}

// Cluster is a set of dura processes.
type Cluster struct {
	opt     ClusterOptions
	compose *composeProject // set: the nodes are compose containers
	mu      sync.Mutex
	Nodes   []*Node
	exits   []string // nodes that exited on their own, with their log tails
}

// UnexpectedExits describes every exit of a node the harness did not
// cause (not a kill, a stop or the cluster's close), with its log tail.
func (c *Cluster) UnexpectedExits() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.exits...)
}

// status says whether the node runs and whether it is paused.
func (nd *Node) status() (running, paused bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.running, nd.paused
}

// setState records a node's state (containers are not watched).
func (nd *Node) setState(running, paused bool) {
	nd.mu.Lock()
	nd.running, nd.paused = running, paused
	nd.mu.Unlock()
}

// StartCluster starts opt.Nodes nodes that form one cluster and waits
// until all are ready.
func StartCluster(ctx context.Context, opt ClusterOptions) (*Cluster, error) {
	c := &Cluster{opt: opt}
	for i := range opt.Nodes {
		if _, err := c.newNode(); err != nil {
			c.Close()
			return nil, err
		}
		_ = i
	}
	for i := range opt.Nodes {
		if err := c.start(i, true); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx, 90*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) newNode() (*Node, error) {
	c.mu.Lock()
	i := len(c.Nodes)
	c.mu.Unlock()
	nd := &Node{Index: i, Name: fmt.Sprintf("n%d", i+1), Dir: filepath.Join(c.opt.Dir, fmt.Sprintf("n%d", i+1))}
	if err := os.MkdirAll(nd.Dir, 0o755); err != nil {
		return nil, err
	}
	if c.opt.Net != nil {
		if err := c.opt.Net.AddNode(i); err != nil {
			return nil, err
		}
		ip := c.opt.Net.IP(i)
		nd.HTTP, nd.Gossip, nd.Raft = ip+":8080", ip+":7946", ip+":7947"
	} else {
		nd.HTTP, nd.Gossip, nd.Raft = freePort(), freePort(), freePort()
	}
	if c.opt.SmallDisk != "" && c.opt.SmallDiskNode == i {
		if err := run("mount", "-t", "tmpfs", "-o", "size="+c.opt.SmallDisk, "tmpfs", nd.Dir); err != nil {
			return nil, err
		}
		nd.mounted = true
	}
	nd.hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	nd.client = rpc.NewClient("http://"+nd.HTTP, nd.hc)
	nd.admin = nd.client.WithToken(c.opt.Token)
	c.mu.Lock()
	c.Nodes = append(c.Nodes, nd)
	c.mu.Unlock()
	return nd, nil
}

// freePort is a loopback address below the ephemeral range, so that a
// node restarted on it finds it free (see internal/freeport).
func freePort() string {
	addr, err := freeport.Addr()
	if err != nil {
		panic(err)
	}
	return addr
}

// start runs node i's process; founders form the cluster together, later
// nodes (and every restart) join through the others.
func (c *Cluster) start(i int, founder bool) error {
	nd := c.Nodes[i]
	if c.compose != nil {
		if err := c.compose.run("start", nd.Name); err != nil {
			return err
		}
		nd.setState(true, false)
		return nil
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.running {
		return nil
	}
	args := []string{"serve", "--name", nd.Name, "--data", nd.Dir, "--http", nd.HTTP, "--gossip", nd.Gossip,
		"--raft", nd.Raft, "--secret", c.opt.Secret, "--admin-token", c.opt.Token, "--log-level", "info",
		"--shutdown-timeout", "60s"}
	var join []string
	for _, o := range c.Nodes {
		if o != nd {
			join = append(join, o.Gossip)
		}
	}
	args = append(args, c.opt.Extra...)
	if c.opt.DebugPorts > 0 {
		args = append(args, "--debug-addr", fmt.Sprintf("127.0.0.1:%d", c.opt.DebugPorts+i))
	}
	if founder && !nd.startedOnce {
		args = append(args, "--bootstrap-expect", strconv.Itoa(c.opt.Nodes))
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	var cmd *exec.Cmd
	if c.opt.Net != nil {
		cmd = c.opt.Net.Command(i, append([]string{c.opt.Bin}, args...)...)
	} else {
		cmd = exec.Command(c.opt.Bin, args...)
	}
	logf, err := os.OpenFile(filepath.Join(c.opt.Dir, nd.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start %s at %s\n", nd.Name, time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the harness dies (a test timeout skips every cleanup), its
	// nodes die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", nd.Name, err)
	}
	nd.cmd, nd.running, nd.paused, nd.startedOnce, nd.expectExit = cmd, true, false, true, false
	nd.done = make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		logf.Close()
		nd.mu.Lock()
		nd.running, nd.exitErr = false, err
		expected := nd.expectExit
		nd.mu.Unlock()
		if !expected {
			c.mu.Lock()
			c.exits = append(c.exits, fmt.Sprintf("%s exited on its own at %s (%v); log tail:\n%s",
				nd.Name, time.Now().Format(time.RFC3339), err, c.logTail(nd, 15)))
			c.mu.Unlock()
		}
		close(done)
	}(nd.done)
	return nil
}

// Restart starts a stopped node again with its data.
func (c *Cluster) Restart(i int) error { return c.start(i, false) }

// AddNode starts a new node that joins the running cluster.
func (c *Cluster) AddNode() (int, error) {
	if c.compose != nil {
		return 0, fmt.Errorf("the compose cluster has a fixed set of nodes")
	}
	nd, err := c.newNode()
	if err != nil {
		return 0, err
	}
	return nd.Index, c.start(nd.Index, false)
}

func (c *Cluster) signal(i int, sig syscall.Signal) error {
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if !nd.running {
		return fmt.Errorf("%s is not running", nd.Name)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		nd.expectExit = true
	}
	return nd.cmd.Process.Signal(sig)
}

// Kill stops node i with SIGKILL and waits for it to be gone.
func (c *Cluster) Kill(i int) error {
	nd := c.Nodes[i]
	_, paused := nd.status()
	if c.compose != nil {
		if paused {
			c.compose.run("unpause", nd.Name)
		}
		if err := c.compose.run("kill", "-s", "SIGKILL", nd.Name); err != nil {
			return err
		}
		nd.setState(false, false)
		return nil
	}
	if paused {
		c.signal(i, syscall.SIGCONT)
	}
	if err := c.signal(i, syscall.SIGKILL); err != nil {
		return err
	}
	<-nd.done
	nd.setState(false, false)
	return nil
}

// Stop sends SIGTERM (a graceful leave when others remain) and waits up to
// timeout for the exit.
func (c *Cluster) Stop(i int, timeout time.Duration) error {
	nd := c.Nodes[i]
	if c.compose != nil {
		if err := c.compose.run("stop", "-t", fmt.Sprint(int(timeout.Seconds())), nd.Name); err != nil {
			return err
		}
		nd.setState(false, false)
		return nil
	}
	if err := c.signal(i, syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-nd.done:
		if nd.exitErr != nil {
			return fmt.Errorf("%s exited after SIGTERM: %v", nd.Name, nd.exitErr)
		}
		return nil
	case <-time.After(timeout):
		// SIGQUIT first: the Go runtime writes every goroutine's stack
		// to the node's log, which says where the shutdown hangs.
		if c.signal(i, syscall.SIGQUIT) == nil {
			select {
			case <-nd.done:
			case <-time.After(5 * time.Second):
			}
		}
		c.Kill(i)
		return fmt.Errorf("%s did not exit within %s of SIGTERM (its goroutines are in its log)", nd.Name, timeout)
	}
}

// Pause freezes node i (SIGSTOP, or the container's cgroup freezer);
// Resume thaws it.
func (c *Cluster) Pause(i int) error  { return c.setPaused(i, true) }
func (c *Cluster) Resume(i int) error { return c.setPaused(i, false) }

func (c *Cluster) setPaused(i int, paused bool) error {
	var err error
	switch {
	case c.compose != nil && paused:
		err = c.compose.run("pause", c.Nodes[i].Name)
	case c.compose != nil:
		err = c.compose.run("unpause", c.Nodes[i].Name)
	case paused:
		err = c.signal(i, syscall.SIGSTOP)
	default:
		err = c.signal(i, syscall.SIGCONT)
	}
	if err != nil {
		return err
	}
	c.Nodes[i].setState(true, paused)
	return nil
}

// Running lists the indexes of live, unpaused nodes.
func (c *Cluster) Running() []int {
	var out []int
	for _, nd := range c.nodes() {
		nd.mu.Lock()
		if nd.running && !nd.paused {
			out = append(out, nd.Index)
		}
		nd.mu.Unlock()
	}
	return out
}

func (c *Cluster) nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.Nodes...)
}

// Client is node i's API client (object routes; no token needed).
func (c *Cluster) Client(i int) *rpc.Client { return c.Nodes[i].client }

// Admin is node i's API client with the admin token.
func (c *Cluster) Admin(i int) *rpc.Client { return c.Nodes[i].admin }

// WaitReady waits until every running node answers /readyz and they
// agree on the epoch.
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		if why = c.ready(ctx); why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("cluster not ready within %s: %v", timeout, why)
}

func (c *Cluster) ready(ctx context.Context) error {
	var epoch uint64
	running := c.Running()
	if len(running) == 0 {
		return errors.New("no node is running")
	}
	for k, i := range running {
		if err := c.Client(i).Ready(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Nodes[i].Name, err)
		}
		info, err := c.Admin(i).Cluster(ctx)
		if err != nil {
			return err
		}
		if k > 0 && info.Epoch != epoch {
			return fmt.Errorf("epochs differ (%d, %d)", epoch, info.Epoch)
		}
		epoch = info.Epoch
	}
	return nil
}

// WaitInSync waits until every running node reports no under-replicated
// partition.
func (c *Cluster) WaitInSync(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	why := errors.New("not asked")
	for time.Now().Before(deadline) {
		why = nil
		for _, i := range c.Running() {
			info, err := c.Admin(i).Cluster(ctx)
			if err == nil && info.UnderReplicated != 0 {
				err = fmt.Errorf("%s: %d partitions under-replicated%s", c.Nodes[i].Name, info.UnderReplicated, laggingText(info.Lagging))
			}
			if err != nil {
				why = err
				break
			}
		}
		if why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("partitions not back in sync within %s: %v", timeout, why)
}

// laggingText names under-replicated partitions and their copies.
func laggingText(ps []rpc.PartitionCopies) string {
	if len(ps) == 0 {
		return ""
	}
	texts := make([]string, len(ps))
	for k, p := range ps {
		texts[k] = fmt.Sprintf("partition %d: primary %s, replicas %v, in sync %v, version %d", p.Partition, p.Primary, p.Replicas, p.InSync, p.Version)
		if p.Target != "" {
			texts[k] += ", moving to " + p.Target
		}
	}
	return " (" + strings.Join(texts, "; ") + ")"
}

// Leader is the index of the node leading Raft, as a running node sees it.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	for _, i := range c.Running() {
		info, err := c.Admin(i).Cluster(ctx)
		if err != nil || info.Leader == "" {
			continue
		}
		for _, nd := range c.nodes() {
			if nd.Name == info.Leader {
				return nd.Index, nil
			}
		}
	}
	return 0, errors.New("no leader known")
}

// GrowDisk resizes the small disk in place, as an operator adding space
// would.
func (c *Cluster) GrowDisk(size string) error {
	for _, nd := range c.nodes() {
		if nd.mounted {
			return run("mount", "-o", "remount,size="+size, nd.Dir)
		}
	}
	return nil
}

// Close kills every process and unmounts small disks.
func (c *Cluster) Close() {
	if c.compose != nil {
		c.compose.close()
		return
	}
	for _, nd := range c.nodes() {
		if running, _ := nd.status(); running {
			c.Kill(nd.Index)
		}
		if nd.mounted {
			run("umount", "-l", nd.Dir)
		}
	}
}

// KeepLogs copies every node's whole log out of the (temporary) data
// directory, for a failure to be studied, and returns where.
func (c *Cluster) KeepLogs(scenario string) (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dura-chaos-%s-%d", scenario, time.Now().Unix()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if c.compose != nil {
		return dir, os.WriteFile(filepath.Join(dir, "compose.log"), []byte(c.compose.logs(1000000)), 0o644)
	}
	for _, nd := range c.nodes() {
		data, err := os.ReadFile(filepath.Join(c.opt.Dir, nd.Name+".log"))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, nd.Name+".log"), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// logTail is the last n lines of a node's log.
func (c *Cluster) logTail(nd *Node, n int) string {
	data, _ := os.ReadFile(filepath.Join(c.opt.Dir, nd.Name+".log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Logs returns the tail of every node's log, for failure reports.
func (c *Cluster) Logs(tail int) string {
	if c.compose != nil {
		return c.compose.logs(tail)
	}
	var b strings.Builder
	for _, nd := range c.nodes() {
		fmt.Fprintf(&b, "--- %s\n%s\n", nd.Name, c.logTail(nd, tail))
	}
	return b.String()
}
