package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
)

// TestFailoverFigure kills -9 the node that is the primary of 50 objects
// in a three-process cluster (three copies, default flags) and times how
// long each of them takes to answer again, through the other nodes, with
// its acknowledged value. Only with DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run FailoverFigure -v -timeout 10m ./cmd/dura
//	DURA_BENCH=1 DURA_FAILOVER_LEADER=1 go test -run FailoverFigure -v ./cmd/dura  # kill the Raft leader
func TestFailoverFigure(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const token, want = "failover-admin-token", 50
	nodes, _, _ := e2eCluster(t, token, false)
	ctx := context.Background()
	admin := nodes[0].client().WithToken(token)
	testutil.Poll(t, 60*time.Second, "nothing under-replicated", func() string {
		info, err := admin.Cluster(ctx)
		if err != nil || info.UnderReplicated != 0 {
			return fmt.Sprintf("%+v %v", info, err)
		}
		return ""
	})
	// Objects until one node is the primary of 50 of them; with
	// DURA_FAILOVER_LEADER=1, the node that is also the Raft leader.
	info, err := admin.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.Leader
	onlyLeader := os.Getenv("DURA_FAILOVER_LEADER") != ""
	byPrimary := map[string][]string{}
	victim := ""
	for i := 0; victim == ""; i++ {
		name := fmt.Sprint("f", i)
		if _, err := increment(ctx, nodes[i%3].client(), name); err != nil {
			t.Fatal(err)
		}
		info, err := admin.Info(ctx, "counter", name)
		if err != nil {
			t.Fatal(err)
		}
		byPrimary[info.Primary] = append(byPrimary[info.Primary], name)
		if len(byPrimary[info.Primary]) == want && (!onlyLeader || info.Primary == leader) {
			victim = info.Primary
		}
	}
	vi := -1
	for i := range nodes {
		if fmt.Sprint("n", i+1) == victim { // e2eCluster's names
			vi = i
		}
	}
	if vi < 0 {
		t.Fatalf("no process named %s", victim)
	}
	survivor := nodes[(vi+1)%3].client()
	nodes[vi].Cmd.Process.Kill()
	killed := time.Now()
	<-nodes[vi].Done
	var mu sync.Mutex
	var took []time.Duration
	var wg sync.WaitGroup
	for _, name := range byPrimary[victim] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(killed) < 2*time.Minute {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				resp, err := survivor.Call(ctx, "GET", "counter", name, "/", nil)
				if err == nil {
					var v struct{ Value int64 }
					json.NewDecoder(resp.Body).Decode(&v)
					resp.Body.Close()
					if v.Value == 1 {
						cancel()
						mu.Lock()
						took = append(took, time.Since(killed))
						mu.Unlock()
						return
					}
				}
				cancel()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if len(took) != want {
		t.Fatalf("%d of %d objects answered within 2 minutes", len(took), want)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	role := "not the Raft leader"
	if victim == leader {
		role = "the Raft leader too"
	}
	t.Logf("%d objects of the killed primary %s (%s) answered again with their value: p50 %s, max %s after the kill",
		want, victim, role, took[want/2].Round(time.Millisecond), took[want-1].Round(time.Millisecond))
}
