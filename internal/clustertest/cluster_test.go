package clustertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/rpc"
)

func put(t *testing.T, c *rpc.Client, name, value string) (string, error) {
	t.Helper()
	res, err := c.SQL(context.Background(), "db", name,
		rpc.Statement{SQL: "CREATE TABLE IF NOT EXISTS t (v TEXT)"},
		rpc.Statement{SQL: "INSERT INTO t VALUES (?)", Params: []any{value}})
	_ = res
	return "", err
}

func readAll(t *testing.T, c *rpc.Client, name string) ([]string, string) {
	t.Helper()
	resp, err := c.Do(context.Background(), "POST", "/v1/objects/db/"+name+"/sql", strings.NewReader(`{"sql":"SELECT v FROM t ORDER BY rowid"}`), nil)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return []string{string(b)}, resp.Header.Get(rpc.HeaderNode)
}

func TestThreeNodesFormAndServeEverywhere(t *testing.T) {
	c := New(t, 3, nil)
	c.WaitConverged(30 * time.Second)
	for i := 0; i < 30; i++ {
		if _, err := put(t, c.Nodes[0].Client, fmt.Sprint("obj", i), fmt.Sprint("v", i)); err != nil {
			t.Fatalf("write obj%d: %v", i, err)
		}
	}
	executors := map[string]bool{}
	for i := 0; i < 30; i++ {
		var first string
		for _, nd := range c.Nodes {
			body, node := readAll(t, nd.Client, fmt.Sprint("obj", i))
			if !strings.Contains(body[0], fmt.Sprintf(`"v%d"`, i)) {
				t.Fatalf("obj%d through %s: %s", i, nd.Name, body[0])
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
