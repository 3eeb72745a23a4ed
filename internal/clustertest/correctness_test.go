package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/rpc"
)

// relay passes a call along a list of relay objects: POST /hop?next=b,c
// calls relay/b with next=c, and so on; the last one answers its name,
// or fails with CONSTRAINT when fail=1.
type relay struct{ st *node.State }

func (r *relay) Fetch(w http.ResponseWriter, req *http.Request) error {
	q := req.URL.Query()
	next := q.Get("next")
	if next == "" {
		if q.Get("fail") == "1" {
			return fmt.Errorf("%w: relay %s refuses", node.ErrConflict, r.st.Name())
		}
		fmt.Fprintf(w, "%s@%s", r.st.Name(), r.st.NodeName())
		return nil
	}
	first, rest, _ := strings.Cut(next, ",")
	out, _ := http.NewRequest("POST", "http://relay/hop?next="+rest+"&fail="+q.Get("fail"), nil)
	resp, err := r.st.Namespace("relay").Get(first).Fetch(out)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(w, "%s@%s>%s", r.st.Name(), r.st.NodeName(), b)
	return nil
}

func registerWithRelay(rt *node.Runtime) error {
	if err := examples.RegisterAll(rt); err != nil {
		return err
	}
	return rt.Register("relay", func(st *node.State) (node.Object, error) { return &relay{st: st}, nil })
}

// owner is the node the committed state gives class/name to.
func owner(t *testing.T, c *Cluster, class, name string) string {
	t.Helper()
	st := c.Up()[0].Cluster.State()
	return st.Partitions[placement.PartitionOf(placement.ObjectID(class, name), len(st.Partitions))].Owner
}

// TestStubCallsCrossNodes: object-to-object calls reach targets on every
// node, keep their error codes, and a cycle across nodes is refused (409)
// instead of deadlocking.
func TestStubCallsCrossNodes(t *testing.T) {
	c := New(t, 3, registerWithRelay)
	c.WaitConverged(30 * time.Second)
	ctx := context.Background()

	// Two relay objects on different nodes.
	var a, b string
	for i := 0; b == ""; i++ {
		name := fmt.Sprint("r", i)
		switch {
		case a == "":
			a = name
		case owner(t, c, "relay", name) != owner(t, c, "relay", a):
			b = name
		}
	}
	call := func(entry *Node, obj, query string) (int, string) {
		resp, err := http.Post("http://"+entry.HTTP+"/objects/relay/"+obj+"/hop?"+query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, entry := range c.Nodes {
		code, body := call(entry, a, "next="+b)
		want := fmt.Sprintf("%s@%s>%s@%s", a, owner(t, c, "relay", a), b, owner(t, c, "relay", b))
		if code != 200 || body != want {
			t.Fatalf("through %s: %d %s, want %s", entry.Name, code, body, want)
		}
		code, body = call(entry, a, "next="+b+"&fail=1")
		var e rpc.ErrorBody
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusConflict || e.Error.Code != "CONSTRAINT" || strings.Contains(e.Error.Message, "CONSTRAINT (409)") {
			t.Fatalf("a CONSTRAINT on %s through %s: %d %s", b, entry.Name, code, body)
		}
		// a -> b -> a: a is waiting on the call, so it is a cycle.
		code, body = call(entry, a, "next="+b+","+a)
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusConflict || !strings.Contains(e.Error.Message, "call cycle") {
			t.Fatalf("cycle through %s: %d %s", entry.Name, code, body)
		}
	}

	// The sharded counter's shards live on all three nodes; every
	// acknowledged increment is in the total read through any node.
	nodes := map[string]bool{}
	for k := range examples.ShardCount {
		nodes[owner(t, c, "counter", examples.ShardName("hot", k))] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("shards on %v only", nodes)
	}
	var total int64
	for i := range 60 {
		resp, err := c.Nodes[i%3].Client.Call(ctx, "POST", "sharded", "hot", "/increment?by=2", nil)
		if err != nil {
			t.Fatalf("increment %d: %v", i, err)
		}
		resp.Body.Close()
		total += 2
	}
	for _, nd := range c.Nodes {
		resp, err := nd.Client.Call(ctx, "GET", "sharded", "hot", "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Total int64 }
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got.Total != total {
			t.Fatalf("total through %s = %d, want %d", nd.Name, got.Total, total)
		}
	}
}

// TestWipedNodeServesNothingEmpty: a node that comes back with an empty
// data directory must not answer for the objects it owned as if they
// never existed: they are 503 OWNER_UNAVAILABLE saying the data is
// missing, through every node, until an operator removes it.
func TestWipedNodeServesNothingEmpty(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	ctx := context.Background()
	const n = 30
	for i := range n {
		if err := put(t, c.Nodes[0].Client, fmt.Sprint("obj", i), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.Nodes[2]
	var lost []int
	for i := range n {
		if owner(t, c, "db", fmt.Sprint("obj", i)) == victim.Name {
			lost = append(lost, i)
		}
	}
	if len(lost) == 0 {
		t.Fatal("the victim owns none of the objects")
	}
	c.Kill(2)
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	c.Restart(2)
	testutil.Poll(t, 30*time.Second, "the cluster marks the wiped node's data missing", func() string {
		for _, nd := range c.Nodes {
			info, err := nd.RT.Cluster(ctx)
			if err != nil {
				return err.Error()
			}
			shown := false
			for _, m := range info.Members {
				shown = shown || m.Name == victim.Name && m.DataMissing
			}
			if !shown {
				return nd.Name + " does not show it"
			}
		}
		return ""
	})
	// It may still be catching up with the cluster (not ready either);
	// once caught up, the reason it is not ready is the missing data.
	testutil.Poll(t, 30*time.Second, "the wiped node says its data directory is missing", func() string {
		err := victim.RT.Ready(ctx)
		if err == nil {
			t.Fatal("the wiped node says ready")
		}
		if !strings.Contains(err.Error(), "data directory") {
			return err.Error()
		}
		return ""
	})
	for _, i := range lost {
		name := fmt.Sprint("obj", i)
		for _, nd := range c.Nodes {
			_, err := nd.Client.SQL(ctx, "db", name, rpc.Statement{SQL: "SELECT v FROM t"})
			var ae *rpc.APIError
			if !errors.As(err, &ae) || ae.Code != "OWNER_UNAVAILABLE" || !strings.Contains(ae.Message, "missing on node "+victim.Name) {
				t.Fatalf("%s through %s: %v, want OWNER_UNAVAILABLE saying the data is missing", name, nd.Name, err)
			}
		}
	}
	for i := range n {
		if owner(t, c, "db", fmt.Sprint("obj", i)) == victim.Name {
			continue
		}
		body, _ := readAll(t, c.Nodes[0].Client, fmt.Sprint("obj", i))
		if !strings.Contains(body, fmt.Sprintf(`"v%d"`, i)) {
			t.Fatalf("obj%d on a healthy node: %s", i, body)
		}
	}
}

// TestListingWithANodeDown: a cluster-wide listing answers what the live
// nodes hold and names the node it could not ask.
func TestListingWithANodeDown(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	ctx := context.Background()
	live := 0
	for i := range 30 {
		name := fmt.Sprint("obj", i)
		if err := put(t, c.Nodes[0].Client, name, "v"); err != nil {
			t.Fatal(err)
		}
		if owner(t, c, "db", name) != "n3" {
			live++
		}
	}
	// The catalog records new objects in the background.
	testutil.Poll(t, 10*time.Second, "all 30 objects listed", func() string {
		list, err := c.Nodes[0].Client.ListObjects(ctx, "db", "", 1000)
		if err != nil || len(list.Objects) != 30 {
			return fmt.Sprintf("%d listed, %v", len(list.Objects), err)
		}
		return ""
	})
	c.Kill(2)
	list, err := c.Nodes[0].Client.ListObjects(ctx, "db", "", 1000)
	if err != nil {
		t.Fatalf("listing with n3 down: %v", err)
	}
	if len(list.Unavailable) != 1 || list.Unavailable[0] != "n3" || len(list.Objects) != live {
		t.Fatalf("listing: %d objects (want %d), unavailable %v (want [n3])", len(list.Objects), live, list.Unavailable)
	}
}
