package clustertest

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
	"github.com/prometheus/client_golang/prometheus"
)

// waitInSync waits until every running node reports no under-replicated
// partition.
func waitInSync(t *testing.T, c *Cluster, timeout time.Duration) {
	t.Helper()
	testutil.Poll(t, timeout, "every partition in sync", func() string {
		for _, nd := range c.Up() {
			info, err := nd.RT.Cluster(context.Background())
			if err != nil {
				return err.Error()
			}
			if info.UnderReplicated != 0 {
				return fmt.Sprintf("%s: %d partitions under-replicated", nd.Name, info.UnderReplicated)
			}
		}
		return ""
	})
}

// tryRead is readAll that reports a failed request instead of failing.
func tryRead(c *rpc.Client, name string) (body, node string, err error) {
	resp, err := c.Do(context.Background(), "POST", "/v1/objects/db/"+name+"/sql", strings.NewReader(`{"sql":"SELECT v FROM t ORDER BY rowid"}`), nil)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get(rpc.HeaderNode), err
}

// missingWrite reads each object through cli and says which acknowledged
// value one of them lacks (or why it could not be read); "" when none.
func missingWrite(cli *rpc.Client, names []string, acked map[string][]string) string {
	for _, name := range names {
		body, node, err := tryRead(cli, name)
		if err != nil {
			return fmt.Sprintf("%s: %v", name, err)
		}
		for _, v := range acked[name] {
			if !strings.Contains(body, `"`+v+`"`) {
				return fmt.Sprintf("%s (executed by %q) lacks %s: %s", name, node, v, body)
			}
		}
	}
	return ""
}

// putRound writes v<i>-<round> into obj<i>, i < objects, each through
// node (i+round) mod n, and notes each in acked.
func putRound(t *testing.T, c *Cluster, objects, round int, acked map[string][]string) {
	t.Helper()
	for i := range objects {
		name, value := fmt.Sprint("obj", i), fmt.Sprintf("v%d-%d", i, round)
		if err := put(t, c.Nodes[(i+round)%len(c.Nodes)].Client, name, value); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		acked[name] = append(acked[name], value)
	}
}

// objNames are obj0..obj(n-1).
func objNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("obj", i)
	}
	return out
}

// TestReplicatedFailover: with three copies of every partition, a killed
// node's objects answer again through the others, with every write
// acknowledged before the kill, without anyone acting; writes go on, and
// the survivors bring every partition back to two in-sync copies.
func TestReplicatedFailover(t *testing.T) {
	c := NewReplicated(t, 3, 3, nil)
	c.WaitConverged(30 * time.Second)
	waitInSync(t, c, 60*time.Second)

	const objects = 30
	acked := map[string][]string{}
	firstRound := map[string]string{} // object -> bookmark after round 0
	for round := range 3 {
		putRound(t, c, objects, round, acked)
		for i := range objects {
			if round == 0 {
				name := fmt.Sprint("obj", i)
				b, err := c.Nodes[i%3].Client.Bookmark(context.Background(), "db", name, time.Time{})
				if err != nil {
					t.Fatalf("bookmark of %s: %v", name, err)
				}
				firstRound[name] = b.Bookmark
			}
		}
	}
	info, err := c.Nodes[0].Client.Info(context.Background(), "db", "obj0")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Replicas) != 3 || info.Replicas[0] != info.Primary || info.Primary != info.Owner {
		t.Fatalf("obj0: primary %q, replicas %v", info.Primary, info.Replicas)
	}

	// Kill a node that is not the Raft leader but is the primary of some
	// of the objects.
	victim := -1
	for i, nd := range c.Nodes {
		if c.Leader() != nd && victim < 0 {
			victim = i
		}
	}
	killed := c.Nodes[victim].Name
	c.Kill(victim)
	start := time.Now()
	survivor := c.Nodes[(victim+1)%3]
	if c.Nodes[(victim+1)%3] == c.Nodes[victim] {
		survivor = c.Nodes[(victim+2)%3]
	}
	testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every object served with its acknowledged writes", func() string {
		return missingWrite(survivor.Client, objNames(objects), acked)
	})
	t.Logf("objects of %s answered again %s after the kill", killed, time.Since(start).Round(time.Millisecond))

	// Writes go on once each partition has two in-sync copies again.
	testutil.PollEvery(t, 30*time.Second, 100*time.Millisecond, "writes after the failover", func() string {
		for i := range objects {
			name := fmt.Sprint("obj", i)
			value := fmt.Sprintf("after-%d", i)
			if slices.Contains(acked[name], value) {
				continue
			}
			if err := put(t, survivor.Client, name, value); err != nil {
				var ae *rpc.APIError
				if asAPI(err, &ae) && ae.Code == "OWNER_UNAVAILABLE" {
					return name + ": " + err.Error()
				}
				t.Fatalf("write %s after the failover: %v", name, err)
			}
			acked[name] = append(acked[name], value)
		}
		return ""
	})
	for i := range objects {
		name := fmt.Sprint("obj", i)
		body, _ := readAll(t, survivor.Client, name)
		for _, v := range acked[name] {
			if !strings.Contains(body, `"`+v+`"`) {
				t.Fatalf("%s lost %s: %s", name, v, body)
			}
		}
	}
	restoreAfterFailover(t, survivor.Client, firstRound)

	// Back, the node is seeded and the ring's partitions are moved back
	// to it (a drain and a switch: it has the data), with nothing lost.
	c.Restart(victim)
	testutil.PollEvery(t, 60*time.Second, 200*time.Millisecond, killed+" primary again, nothing under-replicated", func() string {
		info, err := survivor.RT.Cluster(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, m := range info.Members {
			if m.Name == killed && (m.Primaries == 0 || info.UnderReplicated != 0 || info.MovingPartitions != 0) {
				return fmt.Sprintf("%s primary of %d, %d under-replicated, %d moving", killed, m.Primaries, info.UnderReplicated, info.MovingPartitions)
			}
		}
		return ""
	})
	back := c.Nodes[victim]
	testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every acknowledged write through "+killed, func() string {
		return missingWrite(back.Client, objNames(objects), acked)
	})
}

// TestWipedReplicaReseeded: a node back with an empty data directory
// serves nothing of what it lost; its partitions fail over, it takes its
// new directory and is seeded, and once nothing is under-replicated
// another node can be killed with no acknowledged write lost.
func TestWipedReplicaReseeded(t *testing.T) {
	c := NewReplicated(t, 3, 3, nil)
	c.WaitConverged(30 * time.Second)
	waitInSync(t, c, 60*time.Second)
	const objects = 30
	acked := map[string][]string{}
	write := func(round string) {
		t.Helper()
		testutil.PollEvery(t, 30*time.Second, 100*time.Millisecond, "writes "+round, func() string {
			for i := range objects {
				name, value := fmt.Sprint("obj", i), fmt.Sprintf("v%d-%s", i, round)
				if slices.Contains(acked[name], value) {
					continue
				}
				if err := put(t, c.Up()[i%len(c.Up())].Client, name, value); err != nil {
					return name + ": " + err.Error()
				}
				acked[name] = append(acked[name], value)
			}
			return ""
		})
	}
	check := func(via *Node) {
		t.Helper()
		testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every acknowledged write through "+via.Name, func() string {
			return missingWrite(via.Client, objNames(objects), acked)
		})
	}
	write("first")

	wiped := c.Nodes[2]
	c.Kill(2)
	if err := os.RemoveAll(wiped.Dir); err != nil {
		t.Fatal(err)
	}
	c.Restart(2)
	check(c.Nodes[0])
	write("while-seeding")
	waitInSync(t, c, 60*time.Second)
	for _, nd := range c.Up() {
		info, _ := nd.RT.Cluster(context.Background())
		for _, m := range info.Members {
			if m.DataMissing {
				t.Fatalf("%s still shows %s with its data missing", nd.Name, m.Name)
			}
		}
	}

	// The wiped node holds copies again: a second node can go.
	victim := 0
	if c.Leader() == c.Nodes[0] {
		victim = 1
	}
	c.Kill(victim)
	check(wiped)
	write("after")
	check(wiped)
}

// TestRestartedPrimaryKeepsItsWrites: a primary restarted before any
// failover numbers its records anew; what it acknowledges after the
// restart must reach its replicas (not be taken for resends of its
// earlier records), so that when it is killed for good the promoted
// replicas hold every acknowledged write.
func TestRestartedPrimaryKeepsItsWrites(t *testing.T) {
	c := NewReplicated(t, 3, 3, nil)
	c.WaitConverged(30 * time.Second)
	waitInSync(t, c, 60*time.Second)
	victim := 0
	if c.Leader() == c.Nodes[0] {
		victim = 1
	}
	via := c.Nodes[(victim+1)%3]
	if c.Leader() == nil || via == c.Nodes[victim] {
		t.Fatal("no leader")
	}
	var mine []string // objects whose primary is the victim
	for i := 0; len(mine) < 5; i++ {
		name := fmt.Sprint("obj", i)
		if owner(t, c, "db", name) == c.Nodes[victim].Name {
			mine = append(mine, name)
		}
	}
	acked := map[string][]string{}
	write := func(round string) {
		t.Helper()
		testutil.PollEvery(t, 30*time.Second, 50*time.Millisecond, "writes "+round, func() string {
			for _, name := range mine {
				v := name + "-" + round
				if slices.Contains(acked[name], v) {
					continue
				}
				if err := put(t, via.Client, name, v); err != nil {
					return name + ": " + err.Error()
				}
				acked[name] = append(acked[name], v)
			}
			return ""
		})
	}
	for _, r := range []string{"a", "b", "c", "d"} {
		write(r)
	}
	c.Kill(victim)
	c.Restart(victim)
	write("after-restart")
	waitInSync(t, c, 60*time.Second)
	c.Kill(victim)
	testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every acknowledged write after the primary was killed", func() string {
		return missingWrite(via.Client, mine, acked)
	})
}

// TestDeadMemberReplaced: a member dead past the timeout is removed by
// the leader, its partitions already served by in-sync replicas, and
// the survivors hold every partition in sync between them.
func TestDeadMemberReplaced(t *testing.T) {
	c := NewReplicated(t, 3, 3, nil)
	c.WaitConverged(30 * time.Second)
	waitInSync(t, c, 60*time.Second)
	for i := range 10 {
		if err := put(t, c.Nodes[i%3].Client, fmt.Sprint("obj", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	victim := 0
	if c.Leader() == c.Nodes[0] {
		victim = 1
	}
	name := c.Nodes[victim].Name
	for _, nd := range c.Nodes {
		if nd.up.Load() && nd != c.Nodes[victim] {
			// A short timeout on the survivors: the leader's acts.
			nd.Cluster.SetDeadMemberTimeout(2 * time.Second)
		}
	}
	c.Kill(victim)
	testutil.PollEvery(t, 60*time.Second, 200*time.Millisecond, name+" removed and nothing under-replicated", func() string {
		for _, nd := range c.Up() {
			info, err := nd.RT.Cluster(context.Background())
			if err != nil {
				return err.Error()
			}
			for _, m := range info.Members {
				if m.Name == name && m.Status != "removed" {
					return fmt.Sprintf("%s: %s is %s", nd.Name, name, m.Status)
				}
			}
			if info.UnderReplicated != 0 || info.ReplicationFactor != 2 {
				return fmt.Sprintf("%s: %d under-replicated, factor %d", nd.Name, info.UnderReplicated, info.ReplicationFactor)
			}
		}
		return ""
	})
	for i := range 10 {
		body, _, err := tryRead(c.Nodes[(victim+1)%3].Client, fmt.Sprint("obj", i))
		if err != nil || !strings.Contains(body, `"v"`) {
			t.Fatalf("obj%d after %s was removed: %v %s", i, name, err, body)
		}
	}
}

// restoreAfterFailover brings each object back to its bookmark, taken on
// the primary before the failover, through the new primaries, checks it
// holds exactly its first write, and undoes the restore.
func restoreAfterFailover(t *testing.T, cli *rpc.Client, bookmarks map[string]string) {
	t.Helper()
	ctx := context.Background()
	for name, b := range bookmarks {
		before, _ := readAll(t, cli, name)
		res, err := cli.Restore(ctx, "db", name, rpc.RestoreRequest{Bookmark: b})
		if err != nil {
			t.Fatalf("restore %s to %s after the failover: %v", name, b, err)
		}
		i := strings.TrimPrefix(name, "obj")
		if body, _ := readAll(t, cli, name); !strings.Contains(body, `"v`+i+`-0"`) || strings.Contains(body, `"v`+i+`-1"`) {
			t.Fatalf("%s restored to %s reads %s", name, b, body)
		}
		if _, err := cli.Restore(ctx, "db", name, rpc.RestoreRequest{Bookmark: res.UndoBookmark}); err != nil {
			t.Fatalf("undo the restore of %s: %v", name, err)
		}
		if after, _ := readAll(t, cli, name); after != before {
			t.Fatalf("%s after undoing its restore reads %s, want %s", name, after, before)
		}
	}
}

// TestReplicatedJoinAndLeaveMoveNoFiles: with three copies, a node that
// joins under write load is first seeded as a replica while the owners
// keep serving, then takes its primaries by a drain and a switch; a node
// that leaves hands its primaries to in-sync replicas the same way.
// Nothing acknowledged is lost and, within each change, no object is
// served by two nodes in turns (across both, an object may go A, B, A).
func TestReplicatedJoinAndLeaveMoveNoFiles(t *testing.T) {
	c := NewReplicated(t, 3, 3, nil)
	c.WaitConverged(30 * time.Second)
	waitInSync(t, c, 60*time.Second)
	homed := func(want string) string {
		st := c.Up()[0].Cluster.State()
		n := 0
		for p, part := range st.Partitions {
			if part.Owner != part.Home || part.Target != "" {
				return fmt.Sprintf("partition %d: owner %s, home %s, target %q", p, part.Owner, part.Home, part.Target)
			}
			if part.Owner == want {
				n++
			}
		}
		if want != "" && n == 0 {
			return want + " owns nothing yet"
		}
		if u := st.UnderReplicated(); u != 0 {
			return fmt.Sprintf("%d partitions under-replicated", u)
		}
		return ""
	}
	// during runs change under write load until settled, and checks
	// that no object went back to a node after another served it.
	var total atomic.Int64
	during := func(what string, change func(), settled func() string) map[string][]string {
		stop, done := make(chan struct{}), make(chan struct{})
		var acked, execs map[string][]string
		go func() {
			defer close(done)
			acked, execs = writer(c, 20, stop, &total)
		}()
		change()
		testutil.PollEvery(t, 2*time.Minute, 100*time.Millisecond, what, settled)
		close(stop)
		<-done
		checkSingleOwner(t, execs)
		return acked
	}
	joined := ""
	acked := during("the new node holds the partitions the ring gives it, all in sync", func() {
		joined = c.Nodes[c.Join()].Name
	}, func() string { return homed(joined) })
	for name, vals := range during("every partition on its home after the leave, all in sync", func() { c.Leave(1) }, func() string { return homed("") }) {
		acked[name] = append(acked[name], vals...)
	}
	if total.Load() == 0 {
		t.Fatal("no write was acknowledged")
	}
	checkAcked(t, c, acked)
}

// TestParkedObjectsFailOver: nodes that keep two databases open park
// nearly every object between its events (closed, still live); commits
// still reach every replica, and a killed node's objects answer through
// the others with every acknowledged write.
func TestParkedObjectsFailOver(t *testing.T) {
	var regs []*prometheus.Registry // each node's runtime metrics
	c := newCluster(t, 3, nil, func(cfg *node.Config) {
		cfg.MaxOpenFiles = 2 * node.FilesPerObject
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		regs = append(regs, reg)
	}, replication.Replication{Factor: 3, MinInSync: 2})
	c.WaitConverged(30 * time.Second)
	waitInSync(t, c, 60*time.Second)

	const objects = 20
	acked := map[string][]string{}
	for round := range 3 {
		putRound(t, c, objects, round, acked)
	}
	parks := 0.0
	for _, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "dura_parks_total" {
				parks += mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
	}
	if parks < objects {
		t.Fatalf("%v objects parked in the cluster: the test did not exercise parking", parks)
	}

	victim := -1
	for i, nd := range c.Nodes {
		if c.Leader() != nd && victim < 0 {
			victim = i
		}
	}
	c.Kill(victim)
	survivor := c.Nodes[(victim+1)%3]
	testutil.PollEvery(t, 20*time.Second, 100*time.Millisecond, "every object served with its acknowledged writes", func() string {
		return missingWrite(survivor.Client, objNames(objects), acked)
	})
}
