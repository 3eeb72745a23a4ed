package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/rpc"
)

// put appends value to object name's table t (class db).
func put(t *testing.T, c *rpc.Client, name, value string) error {
	t.Helper()
	_, err := c.SQL(context.Background(), "db", name,
		rpc.Statement{SQL: "CREATE TABLE IF NOT EXISTS t (v TEXT)"},
		rpc.Statement{SQL: "INSERT INTO t VALUES (?)", Params: []any{value}})
	return err
}

// readAll returns the JSON answer listing object name's table t, and the
// node that executed the read.
func readAll(t *testing.T, c *rpc.Client, name string) (string, string) {
	t.Helper()
	resp, err := c.Do(context.Background(), "POST", "/v1/objects/db/"+name+"/sql", strings.NewReader(`{"sql":"SELECT v FROM t ORDER BY rowid"}`), nil)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get(rpc.HeaderNode)
}

func TestThreeNodesFormAndServeEverywhere(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	for i := 0; i < 30; i++ {
		if err := put(t, c.Nodes[0].Client, fmt.Sprint("obj", i), fmt.Sprint("v", i)); err != nil {
			t.Fatalf("write obj%d: %v", i, err)
		}
	}
	executors := map[string]bool{}
	for i := 0; i < 30; i++ {
		var first string
		for _, nd := range c.Nodes {
			body, node := readAll(t, nd.Client, fmt.Sprint("obj", i))
			if !strings.Contains(body, fmt.Sprintf(`"v%d"`, i)) {
				t.Fatalf("obj%d through %s: %s", i, nd.Name, body)
			}
			// Whichever node is asked, one node executes: never two.
			if first == "" {
				first = node
			} else if node != first {
				t.Fatalf("obj%d executed by %s and %s", i, first, node)
			}
		}
		executors[first] = true
	}
	if len(executors) != 3 {
		t.Fatalf("objects spread over %d nodes, want 3", len(executors))
	}
	resp, err := http.Get("http://" + c.Nodes[1].HTTP + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"members":[{"name":"n1"`) {
		t.Fatalf("cluster: %s", b)
	}
}

// writer writes unique values to a set of objects through random running
// nodes until stop, and returns what was acknowledged per object and, per
// object, the nodes that executed its writes in order.
func writer(c *Cluster, objects int, stop <-chan struct{}, acks *atomic.Int64) (map[string][]string, map[string][]string) {
	acked := map[string][]string{}
	execs := map[string][]string{}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return acked, execs
		default:
		}
		up := c.Up()
		nd := up[i%len(up)]
		name := fmt.Sprint("w", i%objects)
		v := fmt.Sprint("x", i)
		body := fmt.Sprintf(`{"statements":[{"sql":"CREATE TABLE IF NOT EXISTS t (v TEXT)"},{"sql":"INSERT INTO t VALUES (?)","params":[%q]}]}`, v)
		resp, err := nd.Client.Do(context.Background(), "POST", "/v1/objects/db/"+name+"/sql", strings.NewReader(body), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			acked[name] = append(acked[name], v)
			execs[name] = append(execs[name], resp.Header.Get(rpc.HeaderNode))
			acks.Add(1)
		}
	}
}

// checkSingleOwner fails if an object's writes went A, then B, then A
// again: two nodes serving it in turns means two served it at once.
func checkSingleOwner(t *testing.T, execs map[string][]string) {
	t.Helper()
	for name, nodes := range execs {
		seen := map[string]bool{}
		prev := ""
		for _, n := range nodes {
			if n != prev && seen[n] {
				t.Fatalf("%s executed by %v: back on %s after another node", name, nodes, n)
			}
			seen[n], prev = true, n
		}
	}
}

func checkAcked(t *testing.T, c *Cluster, acked map[string][]string) {
	t.Helper()
	total := 0
	for name, vals := range acked {
		body, _ := readAll(t, c.Up()[0].Client, name)
		for _, v := range vals {
			if !strings.Contains(body, `"`+v+`"`) {
				t.Fatalf("%s lost acknowledged write %s: %s", name, v, body)
			}
			total++
		}
	}
	if total == 0 {
		t.Fatal("no write was acknowledged")
	}
	t.Logf("%d acknowledged writes over %d objects all present", total, len(acked))
}

func TestJoinAndLeaveUnderLoadLoseNothing(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	stop := make(chan struct{})
	type result struct{ acked, execs map[string][]string }
	done := make(chan result)
	var acks atomic.Int64
	run := func() { a, e := writer(c, 40, stop, &acks); done <- result{a, e} }
	writesFlow := func() {
		t.Helper()
		from := acks.Load()
		testutil.Poll(t, 10*time.Second, "writes flow", func() string {
			if n := acks.Load() - from; n < 10 {
				return fmt.Sprintf("%d writes acknowledged", n)
			}
			return ""
		})
	}
	go run()
	writesFlow() // before the join
	c.Join()
	c.WaitConverged(60 * time.Second)
	close(stop)
	r := <-done
	acked := r.acked
	checkAcked(t, c, acked)
	checkSingleOwner(t, r.execs)
	info, _ := c.Nodes[3].RT.Cluster(context.Background())
	for _, m := range info.Members {
		if m.Name == "n4" && m.Partitions == 0 {
			t.Fatal("the joined node took no partition")
		}
	}

	stop = make(chan struct{})
	go run()
	writesFlow() // before the leave
	c.Leave(1)
	c.WaitConverged(60 * time.Second)
	close(stop)
	r = <-done
	checkAcked(t, c, acked)
	checkAcked(t, c, r.acked)
	checkSingleOwner(t, r.execs)
}

func TestKilledOwnerAnswers503UntilRestart(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	owners := map[string]string{}
	for i := 0; i < 30; i++ {
		name := fmt.Sprint("k", i)
		if err := put(t, c.Nodes[0].Client, name, "before"); err != nil {
			t.Fatal(err)
		}
		_, owners[name] = readAll(t, c.Nodes[0].Client, name)
	}
	c.Kill(2)
	for name, owner := range owners {
		_, err := c.Nodes[0].Client.SQL(context.Background(), "db", name, rpc.Statement{SQL: "SELECT v FROM t"})
		if owner == "n3" {
			var ae *rpc.APIError
			if err == nil || !asAPI(err, &ae) || ae.Status != 503 || ae.Code != "OWNER_UNAVAILABLE" {
				t.Fatalf("%s on the dead node: %v", name, err)
			}
		} else if err != nil {
			t.Fatalf("%s on a healthy node: %v", name, err)
		}
	}
	c.Restart(2)
	c.WaitConverged(60 * time.Second)
	for name := range owners {
		body, node := readAll(t, c.Nodes[1].Client, name)
		if !strings.Contains(body, `"before"`) || node != owners[name] {
			t.Fatalf("%s after restart: %s on %s (was %s)", name, body, node, owners[name])
		}
	}
}

func TestLeaderLossLeavesHealthyOwnersServing(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	leader := c.Leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	for i, nd := range c.Nodes {
		if nd == leader {
			c.Kill(i)
		}
	}
	// Objects owned by the survivors keep answering, with no wait for a
	// new leader.
	served := 0
	for i := 0; i < 30; i++ {
		name := fmt.Sprint("l", i)
		err := put(t, c.Up()[0].Client, name, "x")
		var ae *rpc.APIError
		if err != nil && !(asAPI(err, &ae) && ae.Code == "OWNER_UNAVAILABLE") {
			t.Fatalf("%s: %v", name, err)
		}
		if err == nil {
			served++
		}
	}
	if served == 0 {
		t.Fatal("nothing served after the leader died")
	}
	testutil.PollTrue(t, 20*time.Second, "a new leader", func() bool { return c.Leader() != nil })
}

func asAPI(err error, target **rpc.APIError) bool {
	ae, ok := err.(*rpc.APIError)
	if ok {
		*target = ae
	}
	return ok
}

func TestForcedRemovalReassignsADeadNodesPartitions(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	c.Kill(2)
	cli := c.Nodes[0].Client
	waitDead(t, c.Nodes[0], "n3")
	// Refused without force, and for a live member.
	if _, err := cli.Do(context.Background(), "POST", "/v1/cluster/members/n3/remove", nil, nil); err == nil {
		t.Fatal("removal without force accepted")
	}
	if _, err := cli.Do(context.Background(), "POST", "/v1/cluster/members/n2/remove?force=true", nil, nil); err == nil {
		t.Fatal("removal of a live member accepted")
	}
	forceRemove(t, cli, "n3")
	c.WaitConverged(30 * time.Second)
	for i := 0; i < 20; i++ {
		if err := put(t, cli, fmt.Sprint("r", i), "after"); err != nil {
			t.Fatalf("r%d after removal: %v", i, err)
		}
	}
	info, _ := c.Nodes[0].RT.Cluster(context.Background())
	for _, m := range info.Members {
		if m.Name == "n3" && (m.Status != "removed" || m.Partitions != 0) {
			t.Fatalf("removed member: %+v", m)
		}
	}
}

func TestVotersAndNonVoters(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	c.Join()
	c.WaitConverged(60 * time.Second)
	suffrage := func() (voters, nonvoters []string) {
		servers, err := c.Leader().Cluster.RaftServers()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if s.Voter {
				voters = append(voters, s.ID)
			} else {
				nonvoters = append(nonvoters, s.ID)
			}
		}
		return
	}
	v, nv := suffrage()
	if len(v) != 3 || len(nv) != 1 || nv[0] != "n4" {
		t.Fatalf("voters %v, non-voters %v", v, nv)
	}
	c.Leave(0) // a voter leaves: the non-voter is promoted
	c.WaitConverged(60 * time.Second)
	testutil.Poll(t, 20*time.Second, "three voters after a voter left", func() string {
		if v, nv = suffrage(); len(v) != 3 || len(nv) != 0 {
			return fmt.Sprintf("voters %v, non-voters %v", v, nv)
		}
		return ""
	})
}

func TestListingSpansTheCluster(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	want := map[string]bool{}
	for i := 0; i < 25; i++ {
		name := fmt.Sprint("list", i)
		if err := put(t, c.Nodes[i%3].Client, name, "x"); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	testutil.Poll(t, 10*time.Second, "every object listed", func() string {
		got := map[string]bool{}
		cursor := ""
		for {
			page, err := c.Nodes[1].Client.ListObjects(context.Background(), "db", cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Objects {
				if got[o.Name] {
					t.Fatalf("%s listed twice", o.Name)
				}
				got[o.Name] = true
			}
			if page.Cursor == "" {
				break
			}
			cursor = page.Cursor
		}
		if len(got) != len(want) {
			return fmt.Sprintf("listed %d of %d objects", len(got), len(want))
		}
		return ""
	})
}

func TestIsolatedNodeStopsServingBeforeItsPartitionsMove(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	owned := []string{}
	for i := 0; len(owned) < 5 && i < 200; i++ {
		name := fmt.Sprint("iso", i)
		if err := put(t, c.Nodes[0].Client, name, "before"); err != nil {
			t.Fatal(err)
		}
		if _, node := readAll(t, c.Nodes[0].Client, name); node == "n3" {
			owned = append(owned, name)
		}
	}
	iso := c.Nodes[2]
	iso.Cluster.Isolate()
	// Within the lease the isolated node may still serve; after it, never.
	testutil.Poll(t, 10*time.Second, "the isolated node refuses with OWNER_UNAVAILABLE", func() string {
		_, err := iso.Client.SQL(context.Background(), "db", owned[0], rpc.Statement{SQL: "SELECT v FROM t"})
		var ae *rpc.APIError
		if err != nil && asAPI(err, &ae) && ae.Code == "OWNER_UNAVAILABLE" {
			return ""
		}
		return fmt.Sprintf("still serves: %v", err)
	})
	waitDead(t, c.Nodes[0], "n3")
	forceRemove(t, c.Nodes[0].Client, "n3")
	for _, name := range owned {
		// The new owners serve the (empty) objects; the isolated node,
		// asked directly, still refuses.
		// Views catch up with the removal within moments; until then
		// the request reaches the isolated node, which refuses it.
		testutil.PollErr(t, 10*time.Second, name+" served after the removal", func() error {
			return put(t, c.Nodes[0].Client, name, "after")
		})
		if _, err := iso.Client.SQL(context.Background(), "db", name, rpc.Statement{SQL: "SELECT v FROM t"}); err == nil {
			t.Fatalf("%s served by the isolated node after its removal", name)
		}
	}
}

func TestLeftNodeRejoinsWhenRestarted(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	c.Leave(2)
	c.WaitConverged(60 * time.Second)
	c.Restart(2)
	c.WaitConverged(60 * time.Second)
	info, err := c.Nodes[0].RT.Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.Members {
		if m.Name == "n3" && (m.Status != "alive" || m.Partitions == 0) {
			t.Fatalf("n3 after rejoining: %+v", m)
		}
	}
}

// waitDead waits until observer's gossip sees member name dead.
func waitDead(t *testing.T, observer *Node, name string) {
	t.Helper()
	testutil.Poll(t, 20*time.Second, name+" seen dead by "+observer.Name, func() string {
		info, err := observer.RT.Cluster(context.Background())
		for _, m := range info.Members {
			if m.Name == name && m.Status == "dead" {
				return ""
			}
		}
		return fmt.Sprintf("members %+v %v", info.Members, err)
	})
}

// forceRemove removes a dead member, retrying while the survivors elect a
// leader (the member may have led): 503 then, as for any client.
func forceRemove(t *testing.T, cli *rpc.Client, name string) {
	t.Helper()
	testutil.PollEvery(t, 30*time.Second, 100*time.Millisecond, "forced removal of "+name, func() string {
		resp, err := cli.Do(context.Background(), "POST", "/v1/cluster/members/"+name+"/remove?force=true", nil, nil)
		if err == nil {
			resp.Body.Close()
			return ""
		}
		// 503 while a leader is elected; CONSTRAINT "not yet declared
		// dead" while the leader's own gossip has not seen what the
		// test's observer saw (dura node remove waits the same way).
		var ae *rpc.APIError
		switch {
		case !asAPI(err, &ae):
			t.Fatal(err)
		case ae.Code == "OWNER_UNAVAILABLE":
		case ae.Code == "CONSTRAINT" && strings.Contains(ae.Message, "not yet declared dead"):
		default:
			t.Fatal(err)
		}
		return err.Error()
	})
}

// holder's Fetch blocks until its event is cancelled and reports why.
type holder struct {
	started chan<- struct{}
	cause   chan<- error
}

func (h *holder) Fetch(w http.ResponseWriter, r *http.Request) error {
	h.started <- struct{}{}
	<-r.Context().Done()
	h.cause <- context.Cause(r.Context())
	return r.Context().Err()
}

// TestEventsStopWhenTheLeaseRunsOut: an event still running on a node
// cut off from the cluster past its lease is cancelled (its calls out
// stop), since the leader may promote another primary soon after.
func TestEventsStopWhenTheLeaseRunsOut(t *testing.T) {
	started, cause := make(chan struct{}, 1), make(chan error, 1)
	c := New(t, 3, func(rt *node.Runtime) error {
		return rt.Register("hold", func(*node.State) (node.Object, error) { return &holder{started, cause}, nil })
	})
	c.WaitConverged(30 * time.Second)
	name := ""
	for i := 0; name == ""; i++ {
		if n := fmt.Sprint("h", i); owner(t, c, "hold", n) == "n3" {
			name = n
		}
	}
	iso := c.Nodes[2]
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if resp, err := iso.Client.Call(ctx, "POST", "hold", name, "/", nil); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	iso.Cluster.Isolate()
	select {
	case err := <-cause:
		if !errors.Is(err, apierr.ErrOwnerUnavailable) {
			t.Fatalf("the event was cancelled by %v, not by the lease", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the event still runs a minute after its node was cut off")
	}
}
