package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

var (
	e2eOnce sync.Once
	e2eBin  string
	e2eErr  error
)

// e2eBinary builds the dura binary once per test run.
func e2eBinary(t *testing.T) string {
	t.Helper()
	e2eOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dura-e2e-bin-")
		if err != nil {
			e2eErr = err
			return
		}
		e2eBin = filepath.Join(dir, "dura")
		out, err := exec.Command("go", "build", "-o", e2eBin, ".").CombinedOutput()
		if err != nil {
			e2eErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e2eErr != nil {
		t.Fatal(e2eErr)
	}
	return e2eBin
}

// e2eNode is a "dura serve" process.
type e2eNode struct{ *testutil.Proc }

// e2eStart runs "dura serve" on random loopback ports with data in dir
// and waits until it is ready.
func e2eStart(t *testing.T, dir string, extra ...string) *e2eNode {
	t.Helper()
	n := e2eLaunch(t, dir, append([]string{"--name", "e2e", "--gossip", "127.0.0.1:0", "--raft", "127.0.0.1:0"}, extra...)...)
	n.waitReady(t, 30*time.Second)
	return n
}

// e2eLaunch runs "dura serve" on a random loopback HTTP port with data in
// dir and waits until it says where it serves.
func e2eLaunch(t *testing.T, dir string, extra ...string) *e2eNode {
	t.Helper()
	args := append([]string{"serve", "--data", dir, "--http", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	return &e2eNode{testutil.Launch(t, e2eBinary(t), args...)}
}

// waitReady waits until the node's cluster has formed and it serves.
func (n *e2eNode) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	testutil.Poll(t, timeout, "serve ready", func() string {
		if err := n.client().Ready(context.Background()); err != nil {
			return fmt.Sprintf("%v\n%s", err, n.Log())
		}
		return ""
	})
}

func (n *e2eNode) client() *rpc.Client { return rpc.NewClient("http://"+n.Addr, nil) }

// increment calls the counter and returns the acknowledged value.
func increment(ctx context.Context, c *rpc.Client, name string) (int64, error) {
	resp, err := c.Call(ctx, "POST", "counter", name, "/increment", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct{ Value int64 }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, err
	}
	return v.Value, nil
}

func readCounter(t *testing.T, c *rpc.Client, name string) int64 {
	t.Helper()
	resp, err := c.Call(context.Background(), "GET", "counter", name, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Value int64 }
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Value
}

// hammer increments counters from several clients until stop closes and
// returns the highest acknowledged value of each counter.
func hammer(c *rpc.Client, counters int, stop <-chan struct{}) map[string]int64 {
	var mu sync.Mutex
	acked := map[string]int64{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprint("k", (w+i)%counters)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				v, err := increment(ctx, c, name)
				cancel()
				if err != nil {
					continue // unacknowledged: may or may not have landed
				}
				mu.Lock()
				acked[name] = max(acked[name], v)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	return acked
}

// stopUnderLoad starts a node, writes to counters from several clients,
// stops the node with sig once writes flow, and checks after a restart
// that every acknowledged write is there. It returns the exit error.
func stopUnderLoad(t *testing.T, counters int, sig syscall.Signal) error {
	t.Helper()
	dir := t.TempDir()
	n := e2eStart(t, dir)
	stop := make(chan struct{})
	result := make(chan map[string]int64)
	go func() { result <- hammer(n.client(), counters, stop) }()
	testutil.Poll(t, 30*time.Second, "writes flow", func() string {
		if v := readCounter(t, n.client(), "k0"); v < 20 {
			return fmt.Sprintf("k0 = %d, want 20", v)
		}
		return ""
	})
	n.Cmd.Process.Signal(sig)
	var exitErr error
	select {
	case exitErr = <-n.Done:
	case <-time.After(40 * time.Second):
		t.Fatalf("serve did not stop after %s", sig)
	}
	close(stop)
	acked := <-result
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the stop")
	}
	n2 := e2eStart(t, dir)
	for name, v := range acked {
		if got := readCounter(t, n2.client(), name); got < v {
			t.Errorf("counter %s = %d after restart, but %d was acknowledged", name, got, v)
		}
	}
	if exitErr != nil {
		return fmt.Errorf("%v\n%s", exitErr, n.Log())
	}
	return nil
}

func TestE2EKill9LosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	stopUnderLoad(t, 16, syscall.SIGKILL) // killed: its exit status is no news
}

func TestE2ESigtermFinishesInFlightEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	if err := stopUnderLoad(t, 4, syscall.SIGTERM); err != nil {
		t.Fatalf("serve exited badly after SIGTERM: %v", err)
	}
}

func TestE2EServeRefusesOpenAddressWithoutSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	cmd := exec.Command(e2eBinary(t), "serve", "--data", t.TempDir(), "--http", "0.0.0.0:0")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--insecure") {
		t.Fatalf("exit %v, output %s", err, out)
	}
}

// TestE2ESecondNodeOnTheSameData: a second "dura serve" on a data
// directory a running node holds stops at once and names the holder.
func TestE2ESecondNodeOnTheSameData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	n := e2eStart(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e2eBinary(t), "serve", "--data", dir, "--http", "127.0.0.1:0",
		"--gossip", "127.0.0.1:0", "--raft", "127.0.0.1:0").CombinedOutput()
	want := fmt.Sprintf("data directory %s is in use by another dura process (pid %d)", dir, n.Cmd.Process.Pid)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("exit %v, output %s; want %q", err, out, want)
	}
	if err := n.client().Ready(context.Background()); err != nil {
		t.Fatalf("the first node stopped serving: %v", err)
	}
}

func TestE2EDefaultClassesServeOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	n := e2eStart(t, t.TempDir())
	resp, err := http.Post("http://"+n.Addr+"/objects/counter/readme/increment?key=hits&by=5", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"key":"hits","value":5}` || resp.Header.Get("X-Dura-Node") != "e2e" {
		t.Fatalf("%d %s %v", resp.StatusCode, b, resp.Header)
	}
}

// TestE2EThreeProcessesWithSecret: three "dura serve" processes sharing a
// secret form a cluster that serves every object through every node; a
// fourth process with another secret never gets in.
func TestE2EThreeProcessesWithSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const secret, token = "e2e-cluster-secret-0123", "e2e-admin-token"
	seed := testutil.FreeAddr(t)
	var nodes []*e2eNode
	for i := range 3 {
		gossip, join := seed, seed
		if i > 0 {
			gossip = testutil.FreeAddr(t)
		} else {
			join = ""
		}
		args := []string{"--name", fmt.Sprint("n", i+1), "--gossip", gossip, "--raft", testutil.FreeAddr(t),
			"--bootstrap-expect", "3", "--secret", secret, "--admin-token", token}
		if join != "" {
			args = append(args, "--join", join)
		}
		nodes = append(nodes, e2eLaunch(t, t.TempDir(), args...))
	}
	for _, n := range nodes {
		n.waitReady(t, 60*time.Second)
	}
	ctx := context.Background()
	executors := map[string]bool{}
	for i := range 12 {
		name := fmt.Sprint("c", i)
		if _, err := increment(ctx, nodes[i%3].client(), name); err != nil {
			t.Fatalf("increment %s through n%d: %v", name, i%3+1, err)
		}
		for _, n := range nodes {
			resp, err := n.client().Call(ctx, "GET", "counter", name, "/", nil)
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			var v struct{ Value int64 }
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			executors[resp.Header.Get(rpc.HeaderNode)] = true
			if v.Value != 1 {
				t.Fatalf("%s through %s = %d", name, n.Addr, v.Value)
			}
		}
	}
	if len(executors) < 2 {
		t.Fatalf("objects ran on %v only: nothing was forwarded", executors)
	}
	admin := nodes[0].client().WithToken(token)
	if _, err := nodes[0].client().Cluster(ctx); err == nil {
		t.Fatal("/v1/cluster answered without the admin token")
	}

	outsider := e2eLaunch(t, t.TempDir(), "--name", "n4", "--gossip", testutil.FreeAddr(t), "--raft", testutil.FreeAddr(t),
		"--join", seed, "--secret", "another-secret-0123456789", "--admin-token", token)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if outsider.client().Ready(ctx) == nil {
			t.Fatal("a node with another secret became ready")
		}
		info, err := admin.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Members) != 3 {
			t.Fatalf("members %+v", info.Members)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := outsider.Log(); !strings.Contains(l, "no member answered") {
		t.Fatalf("the outsider did not report its failed join:\n%s", l)
	}
}

// TestE2EFirstRequestAfterHealthz: a newcomer's script - start the node,
// wait for /healthz, send a request - works on the first try: the
// request waits while the one-node cluster forms instead of answering 503.
func TestE2EFirstRequestAfterHealthz(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	n := e2eLaunch(t, t.TempDir(), "--name", "e2e", "--gossip", "127.0.0.1:0", "--raft", "127.0.0.1:0")
	// Every 5 ms: the request must come right after /healthz answers,
	// while the cluster may still be forming.
	testutil.PollEvery(t, 30*time.Second, 5*time.Millisecond, "/healthz answers 200", func() string {
		resp, err := http.Get("http://" + n.Addr + "/healthz")
		if err != nil {
			return fmt.Sprintf("%v\n%s", err, n.Log())
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Sprintf("status %d\n%s", resp.StatusCode, n.Log())
		}
		return ""
	})
	resp, err := http.Post("http://"+n.Addr+"/objects/counter/first/increment", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"key":"default","value":1}` {
		t.Fatalf("first request after /healthz: %d %s", resp.StatusCode, b)
	}
}

// e2eCluster starts three "dura serve" processes forming one cluster, each
// with the flags extra too, and returns them with each one's arguments
// (to restart it the same way).
func e2eCluster(t *testing.T, token string, joinSelf bool, extra ...string) ([]*e2eNode, [][]string, []string) {
	t.Helper()
	seed := testutil.FreeAddr(t)
	var nodes []*e2eNode
	var args [][]string
	var dirs []string
	for i := range 3 {
		gossip := seed
		if i > 0 {
			gossip = testutil.FreeAddr(t)
		}
		a := []string{"--name", fmt.Sprint("n", i+1), "--gossip", gossip, "--raft", testutil.FreeAddr(t), "--http", testutil.FreeAddr(t),
			"--bootstrap-expect", "3", "--admin-token", token}
		a = append(a, extra...)
		if i > 0 || joinSelf {
			a = append(a, "--join", seed)
		}
		dir := t.TempDir()
		args, dirs = append(args, a), append(dirs, dir)
		nodes = append(nodes, e2eLaunch(t, dir, a...))
	}
	for _, n := range nodes {
		n.waitReady(t, 60*time.Second)
	}
	return nodes, args, dirs
}

// TestE2EShardedAndWipedNode: on three processes keeping one copy of
// each partition, the sharded counter's stub calls reach shards on every
// node and every acknowledged increment is in the total through any
// node; then a node killed, its data directory wiped and started again
// with the same command line serves none of its old objects empty: they
// answer 503 saying the data is missing, through every node, and the
// cluster shows it. (With replicas, TestE2EReplicatedWipedNode.)
func TestE2EShardedAndWipedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const token = "e2e-admin-token"
	nodes, args, dirs := e2eCluster(t, token, false, "--replication-factor", "1")
	ctx := context.Background()
	var total int64
	for i := range 48 {
		resp, err := nodes[i%3].client().Call(ctx, "POST", "sharded", "hot", "/increment?by=3", nil)
		if err != nil {
			t.Fatalf("increment %d: %v", i, err)
		}
		resp.Body.Close()
		total += 3
	}
	executors := map[string]bool{}
	for k := range 8 {
		resp, err := nodes[0].client().Call(ctx, "GET", "counter", fmt.Sprintf("hot~%d", k), "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		executors[resp.Header.Get(rpc.HeaderNode)] = true
		resp.Body.Close()
	}
	if len(executors) < 2 {
		t.Fatalf("the 8 shards live on %v only", executors)
	}
	for _, n := range nodes {
		resp, err := n.client().Call(ctx, "GET", "sharded", "hot", "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Total int64 }
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got.Total != total {
			t.Fatalf("total through %s = %d, want %d", n.Addr, got.Total, total)
		}
	}

	// Objects written, one of them on each node at least.
	owners := map[string]string{}
	for i := range 30 {
		name := fmt.Sprint("w", i)
		resp, err := nodes[0].client().Call(ctx, "POST", "counter", name, "/increment?by=7", nil)
		if err != nil {
			t.Fatal(err)
		}
		owners[name] = resp.Header.Get(rpc.HeaderNode)
		resp.Body.Close()
	}
	victim := nodes[2]
	victim.Cmd.Process.Kill()
	<-victim.Done
	if err := os.RemoveAll(dirs[2]); err != nil {
		t.Fatal(err)
	}
	nodes[2] = e2eLaunch(t, dirs[2], args[2]...)
	admin := nodes[0].client().WithToken(token)
	testutil.Poll(t, 60*time.Second, "the cluster shows n3's data missing", func() string {
		info, err := admin.Cluster(ctx)
		if err == nil {
			for _, m := range info.Members {
				if m.Name == "n3" && m.DataMissing {
					return ""
				}
			}
		}
		return fmt.Sprintf("%+v %v\n%s", info, err, nodes[2].Log())
	})
	checked := 0
	for name, owner := range owners {
		for _, n := range nodes {
			resp, err := n.client().Call(ctx, "GET", "counter", name, "/", nil)
			if owner != "n3" {
				if err != nil {
					t.Fatalf("%s (on %s) through %s: %v", name, owner, n.Addr, err)
				}
				var v struct{ Value int64 }
				json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
				if v.Value != 7 {
					t.Fatalf("%s = %d, want 7", name, v.Value)
				}
				continue
			}
			var ae *rpc.APIError
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("%s, owned by the wiped node, answered through %s: %s", name, n.Addr, b)
			}
			if !errors.As(err, &ae) || ae.Code != "OWNER_UNAVAILABLE" || !strings.Contains(ae.Message, "missing on node n3") {
				t.Fatalf("%s through %s: %v", name, n.Addr, err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("none of the objects was on the wiped node")
	}
	if l := nodes[2].Log(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "data directory") {
		t.Fatalf("the wiped node did not log the missing data at ERROR:\n%s", l)
	}

	// dura status says what is wrong and what to do, and fails.
	vars := map[string]string{"DURA_ADDR": "http://" + nodes[0].Addr, "DURA_ADMIN_TOKEN": token}
	st := runEnv(t, vars, "", "status")
	if st.code == 0 || !strings.Contains(st.stdout, "data missing") || !strings.Contains(st.stdout, "dura node remove --force n3") {
		t.Fatalf("status with n3's data missing: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	// Killed a moment ago, n3 is not yet declared dead: node remove
	// waits for it, saying so, then removes it.
	nodes[2].Cmd.Process.Kill()
	<-nodes[2].Done
	rm := runEnv(t, vars, "", "node", "remove", "--force", "n3")
	if rm.code != 0 || !strings.Contains(rm.stdout, "removed n3") {
		t.Fatalf("node remove: exit %d\n%s%s", rm.code, rm.stdout, rm.stderr)
	}
	if !strings.Contains(rm.stderr, "waiting for n3 to be declared dead") {
		t.Logf("node remove did not have to wait (gossip already declared n3 dead):\n%s", rm.stderr)
	}
	testutil.Poll(t, 30*time.Second, "status shows n3 removed and exits 0", func() string {
		st = runEnv(t, vars, "", "status")
		if st.code != 0 || !strings.Contains(st.stdout, "removed") {
			return fmt.Sprintf("exit %d\n%s%s", st.code, st.stdout, st.stderr)
		}
		return ""
	})
}

// TestE2EReplicatedWipedNode: on three processes with the default three
// copies, a node killed and started again with its data directory wiped
// loses nothing: its objects answer through the others with every
// acknowledged write within 20 s, it is seeded again, and once nothing is
// under-replicated another node can be killed for good with nothing lost.
func TestE2EReplicatedWipedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const token = "e2e-admin-token"
	nodes, args, dirs := e2eCluster(t, token, false)
	ctx := context.Background()
	const objects = 30
	for i := range objects {
		resp, err := nodes[i%3].client().Call(ctx, "POST", "counter", fmt.Sprint("w", i), "/increment?by=7", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	all7 := func(via ...*e2eNode) func() string {
		return func() string {
			for i := range objects {
				for _, n := range via {
					resp, err := n.client().Call(ctx, "GET", "counter", fmt.Sprint("w", i), "/", nil)
					if err != nil {
						return fmt.Sprintf("w%d through %s: %v", i, n.Addr, err)
					}
					var v struct{ Value int64 }
					json.NewDecoder(resp.Body).Decode(&v)
					resp.Body.Close()
					if v.Value != 7 {
						return fmt.Sprintf("w%d through %s = %d, want 7", i, n.Addr, v.Value)
					}
				}
			}
			return ""
		}
	}
	nodes[2].Cmd.Process.Kill()
	<-nodes[2].Done
	if err := os.RemoveAll(dirs[2]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nodes[2] = e2eLaunch(t, dirs[2], args[2]...)
	testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every object through the two others", all7(nodes[0], nodes[1]))
	t.Logf("every object answered through the others %s after the wiped node restarted", time.Since(start).Round(time.Millisecond))
	admin := nodes[0].client().WithToken(token)
	// Settled: the wiped node seeded, its primaries moved back to it (a
	// move seeds the partition's other replicas again), nothing
	// under-replicated, as every node sees it.
	testutil.Poll(t, 90*time.Second, "the wiped node seeded: nothing under-replicated, no primary move pending", func() string {
		for _, n := range nodes {
			info, err := n.client().WithToken(token).Cluster(ctx)
			if err != nil || info.UnderReplicated != 0 || info.MovesPending != 0 || info.ReplicationFactor != 3 {
				return fmt.Sprintf("%s: %+v %v", n.Addr, info, err)
			}
		}
		info, err := admin.Cluster(ctx)
		if err != nil {
			return err.Error()
		}
		for _, m := range info.Members {
			if m.DataMissing {
				return fmt.Sprintf("%s shows its data missing; the leader's and its logs:\n%s\n%s", m.Name, nodes[0].Log(), nodes[2].Log())
			}
		}
		return ""
	})
	t.Logf("nothing under-replicated %s after the wiped node restarted", time.Since(start).Round(time.Millisecond))
	m, err := nodes[2].client().Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := metricValue(m, "dura_insync_expands_total"); !ok || v < 1 {
		t.Fatalf("the seeded node's dura_insync_expands_total = %v (%v)", v, ok)
	}
	if v, ok := metricValue(m, "dura_under_replicated_partitions"); !ok || v != 0 {
		t.Fatalf("dura_under_replicated_partitions = %v (%v)", v, ok)
	}
	// The primaries report their replicas' lag (the reseeded node may be
	// the primary of nothing yet).
	lag := false
	for _, n := range nodes {
		if m, err := n.client().Metrics(ctx); err == nil && strings.Contains(m, "dura_replication_lag_records{peer=") {
			lag = true
		}
	}
	if !lag {
		t.Fatal("no node reports its replicas' lag")
	}
	nodes[0].Cmd.Process.Kill()
	<-nodes[0].Done
	start = time.Now()
	testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every object after a second node was killed", all7(nodes[1], nodes[2]))
	t.Logf("every object answered %s after a second node was killed", time.Since(start).Round(time.Millisecond))
}

// TestE2ERestartedSeedFindsTheCluster: the README's recipe gives every
// node --join of the first one, so the first one joins itself. Killed and
// started again with the same command, it must find the others through
// the members its Raft state knows, not stay alone.
func TestE2ERestartedSeedFindsTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const token = "e2e-admin-token"
	nodes, args, dirs := e2eCluster(t, token, true)
	nodes[0].Cmd.Process.Kill()
	<-nodes[0].Done
	nodes[0] = e2eLaunch(t, dirs[0], args[0]...)
	ctx := context.Background()
	admin := nodes[0].client().WithToken(token)
	testutil.Poll(t, 30*time.Second, "the restarted seed sees 3 members alive", func() string {
		info, err := admin.Cluster(ctx)
		alive := 0
		if err == nil {
			for _, m := range info.Members {
				if m.Status == "alive" {
					alive++
				}
			}
		}
		if alive != 3 {
			return fmt.Sprintf("%d alive: %+v %v\n%s", alive, info, err, nodes[0].Log())
		}
		return ""
	})
	nodes[0].waitReady(t, 30*time.Second)
	if _, err := increment(ctx, nodes[0].client(), "after-restart"); err != nil {
		t.Fatal(err)
	}
}
