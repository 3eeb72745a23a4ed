package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// TestE2EBackupUnderLoadAndRestore backs up a three-process cluster while
// counters are incremented, loads the backup into a new cluster and
// compares every object: each counter holds one of its committed values,
// at least every value acknowledged before the backup began.
func TestE2EBackupUnderLoadAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const token = "backup-admin-token"
	nodes, _, _ := e2eCluster(t, token, false)
	clients := make([]*rpc.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.client().WithToken(token)
	}
	const counters = 16
	var mu sync.Mutex
	acked := map[string]int64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprint("k", (w*5+i)%counters)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				v, err := increment(ctx, clients[(w+i)%len(clients)], name)
				cancel()
				if err == nil {
					mu.Lock()
					acked[name] = max(acked[name], v)
					mu.Unlock()
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testutil.Poll(t, 60*time.Second, "every counter written", func() string {
		mu.Lock()
		defer mu.Unlock()
		for i := range counters {
			if acked[fmt.Sprint("k", i)] < 3 {
				return fmt.Sprintf("k%d = %d", i, acked[fmt.Sprint("k", i)])
			}
		}
		return ""
	})
	alarmAt := time.Now().Add(48 * time.Hour).UnixMilli()
	if err := clients[0].SetAlarm(context.Background(), "counter", "k3", alarmAt); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := map[string]int64{}
	for k, v := range acked {
		before[k] = v
	}
	mu.Unlock()

	dir := filepath.Join(t.TempDir(), "backup")
	cli := func(addr string, args ...string) (string, error) {
		args = append([]string{args[0], "--addr", "http://" + addr, "--token", token}, args[1:]...)
		out, err := exec.Command(e2eBinary(t), args...).CombinedOutput()
		return string(out), err
	}
	if out, err := cli(nodes[1].Addr, "backup", dir); err != nil || !strings.Contains(out, "objects and 1 alarms") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m backupManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	listed := objectNames(t, clients[2])
	if got := len(m.Objects); got != len(listed) {
		t.Fatalf("backup holds %d objects, the cluster %d", got, len(listed))
	}
	final := map[string]int64{}
	for i := range counters {
		name := fmt.Sprint("k", i)
		final[name] = readCounter(t, clients[0], name)
	}

	fresh := e2eStart(t, t.TempDir(), "--admin-token", token)
	dst := fresh.client().WithToken(token)
	// A damaged file stops the load before anything is loaded.
	files, _ := filepath.Glob(filepath.Join(dir, "objects", "*.db"))
	orig, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], append(append([]byte{}, orig[:len(orig)-1]...), orig[len(orig)-1]^1), 0o644)
	if out, err := cli(fresh.Addr, "backup", "--restore", dir); err == nil || !strings.Contains(out, "does not match its manifest") {
		t.Fatalf("load of a damaged backup: %v\n%s", err, out)
	}
	os.WriteFile(files[0], orig, 0o644)
	if list, _ := dst.ListObjects(context.Background(), "", "", 10); len(list.Objects) != 0 {
		t.Fatalf("a refused load left %d objects", len(list.Objects))
	}

	if out, err := cli(fresh.Addr, "backup", "--restore", dir); err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	for i := range counters {
		name := fmt.Sprint("k", i)
		got := readCounter(t, dst, name)
		if got < before[name] || got > final[name] {
			t.Errorf("%s restored as %d: want a committed value between %d (acknowledged before the backup) and %d", name, got, before[name], final[name])
		}
	}
	if got := objectNames(t, dst); strings.Join(got, ",") != strings.Join(listed, ",") {
		t.Fatalf("objects after the load: %v, want %v", got, listed)
	}
	if a, err := dst.GetAlarm(context.Background(), "counter", "k3"); err != nil || a == nil || *a != alarmAt {
		t.Fatalf("alarm of k3 after the load: %v %v, want %d", a, err, alarmAt)
	}
	if out, err := cli(fresh.Addr, "backup", "--restore", dir); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("a second load: %v\n%s", err, out)
	}
}

// objectNames lists the cluster's objects as CLASS/NAME, sorted.
func objectNames(t *testing.T, c *rpc.Client) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		page, err := c.ListObjects(context.Background(), "", cursor, 1000)
		if err != nil || len(page.Unavailable) > 0 {
			t.Fatalf("list objects: %v %v", err, page.Unavailable)
		}
		for _, o := range page.Objects {
			out = append(out, o.Class+"/"+o.Name)
		}
		if cursor = page.Cursor; cursor == "" {
			sort.Strings(out)
			return out
		}
	}
}
