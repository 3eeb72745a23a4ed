package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// TestReseedFigure fills a three-process cluster (three copies) with
// about 1 GiB of objects, wipes one node's data directory, starts it
// again and times how long it takes until nothing is under-replicated:
// every partition re-seeded from page-identical snapshots. Only with
// DURA_BENCH=1 (about 10 GB of disk):
//
//	DURA_BENCH=1 go test -run ReseedFigure -v -timeout 20m ./cmd/dura
func TestReseedFigure(t *testing.T) {
	if os.Getenv("DURA_BENCH") == "" {
		t.Skip("benchmark: set DURA_BENCH=1")
	}
	const token, objects, mib = "reseed-admin-token", 128, 8
	nodes, args, dirs := e2eCluster(t, token, false)
	ctx := context.Background()
	admin := nodes[0].client().WithToken(token)
	underReplicated := func() string {
		info, err := admin.Cluster(ctx)
		if err != nil || info.UnderReplicated != 0 {
			return fmt.Sprintf("%+v %v", info, err)
		}
		return ""
	}
	testutil.Poll(t, 60*time.Second, "nothing under-replicated", underReplicated)
	start := time.Now()
	for i := range objects {
		_, err := nodes[i%3].client().WithToken(token).SQL(ctx, "db", fmt.Sprint("big", i),
			rpc.Statement{SQL: "CREATE TABLE t (b BLOB)"},
			rpc.Statement{SQL: fmt.Sprintf("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d) INSERT INTO t SELECT randomblob(1048576) FROM s", mib)})
		if err != nil {
			t.Fatalf("write big%d: %v", i, err)
		}
	}
	wrote := time.Since(start)
	var total int64
	for i := range objects {
		info, err := admin.Info(ctx, "db", fmt.Sprint("big", i))
		if err != nil {
			t.Fatal(err)
		}
		total += info.SizeBytes
	}
	t.Logf("wrote %d objects, %.0f MiB, in %s (%.1f MiB/s with three copies)", objects, float64(total)/(1<<20), wrote.Round(time.Millisecond), float64(total)/(1<<20)/wrote.Seconds())
	testutil.Poll(t, 5*time.Minute, "nothing under-replicated after the writes", underReplicated)

	nodes[2].Cmd.Process.Kill()
	<-nodes[2].Done
	if err := os.RemoveAll(dirs[2]); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	nodes[2] = e2eLaunch(t, dirs[2], args[2]...)
	// In sync again once it was added back to every partition's in-sync
	// set (it holds a copy of each: three copies on three nodes).
	testutil.PollEvery(t, 15*time.Minute, 200*time.Millisecond, "the wiped node re-seeded", func() string {
		m, err := nodes[2].client().Metrics(ctx)
		if err != nil {
			return err.Error()
		}
		info, err := admin.Cluster(ctx)
		if err != nil {
			return err.Error()
		}
		if v, _ := metricValue(m, "dura_insync_expands_total"); int(v) < info.Partitions || info.UnderReplicated != 0 {
			return fmt.Sprintf("%v of %d partitions in sync on the wiped node, %d under-replicated", v, info.Partitions, info.UnderReplicated)
		}
		return ""
	})
	took := time.Since(start)
	t.Logf("wiped node back in sync %s after its restart: %.1f MiB/s re-seeded", took.Round(time.Millisecond), float64(total)/(1<<20)/took.Seconds())
}
