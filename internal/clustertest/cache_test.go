package clustertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// The cache example's expiry (an alarm that deletes expired rows and
// re-arms itself) keeps working on a cluster whose leader dies.
func TestCacheExpiryThroughLeaderLoss(t *testing.T) {
	c := New(t, 3, examples.RegisterAll)
	c.WaitConverged(30 * time.Second)
	ctx := context.Background()
	objs := names("cache", 12)
	for i, name := range objs {
		resp, err := c.Nodes[i%3].Client.Call(ctx, "PUT", "cache", name, "/k?ttl=1&grace=0", strings.NewReader(`{"v":1}`))
		if err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		resp.Body.Close()
	}
	expires := time.Now().Add(time.Second)
	leader := -1
	for i, nd := range c.Nodes {
		if nd == c.Leader() {
			leader = i
		}
	}
	c.Kill(leader)
	rows := func(name string) (int64, error) {
		res, err := c.Up()[0].Client.SQL(ctx, "cache", name, rpc.Statement{SQL: "SELECT count(*) FROM cache"})
		if err != nil {
			return -1, err
		}
		return res[0].Rows[0][0].(int64), nil
	}
	// Objects on the surviving owners lose their rows within 2 s of expiry.
	time.Sleep(time.Until(expires.Add(2500 * time.Millisecond)))
	alive := 0
	for _, name := range objs {
		n, err := rows(name)
		if err != nil {
			continue // owned by the dead leader: 503 until it returns
		}
		alive++
		if n != 0 {
			t.Fatalf("%s still holds %d expired rows 2.5 s after expiry", name, n)
		}
	}
	if alive == 0 {
		t.Fatal("no cache object on a surviving node")
	}
	c.Restart(leader)
	c.WaitConverged(60 * time.Second)
	testutil.Poll(t, 15*time.Second, "every object's expired rows deleted", func() string {
		for _, name := range objs {
			if n, err := rows(name); err != nil || n != 0 {
				return fmt.Sprintf("%s: %d rows, %v", name, n, err)
			}
		}
		return ""
	})
	for _, name := range objs {
		resp, err := c.Nodes[0].Client.Call(ctx, "GET", "cache", name, "/k", nil)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s/k still served after expiry", name)
		}
		if ae, ok := err.(*rpc.APIError); !ok || ae.Status != 404 {
			t.Fatalf("%s/k after expiry: %v", name, fmt.Sprint(err))
		}
	}
}
