package deploy

// The compose harness: builds the image, runs deploy/docker-compose.yml
// under a project name, host ports and a subnet of its own, and talks to
// the nodes over their published loopback ports. Everything it starts is
// removed by t.Cleanup, pass or fail.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/freeport"
	"github.com/dura-dev/dura/internal/testutil"
)

// composeCluster is one compose project of three nodes. Its methods are
// safe to call concurrently, except up, restart and the cleanup.
type composeCluster struct {
	t       *testing.T
	dir     string   // deploy/
	compose []string // "docker compose" or "docker-compose"
	project string
	image   string
	env     []string // DURA_IMAGE, DURA_SUBNET, DURAn_HTTP_PORT
	token   string
	names   []string // dura1..dura3, the compose services and node names
	ports   []int    // host ports of their HTTP APIs, fixed across restarts
	hc      *http.Client

	logDir string // logs of containers replaced or removed, kept if the test fails

	mu     sync.Mutex
	images []string // image IDs built, removed at cleanup
}

// composeCommand is "docker compose" where the plugin works, else the
// standalone docker-compose (the only one on this project's machines).
func composeCommand() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, nil
	}
	return nil, fmt.Errorf("neither 'docker compose' nor 'docker-compose' works")
}

// newComposeCluster picks a project name, ports and subnet of its own
// and registers the cleanup; it starts nothing.
func newComposeCluster(t *testing.T) *composeCluster {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	suffix := randomHex(4)
	c := &composeCluster{
		t: t, dir: dir, compose: cmd,
		project: "duratest" + suffix,
		image:   "dura:test-" + suffix,
		token:   envFileValue(t, filepath.Join(dir, "local.env"), "DURA_ADMIN_TOKEN"),
		names:   []string{"dura1", "dura2", "dura3"},
		hc:      &http.Client{Timeout: 60 * time.Second},
	}
	c.env = append(c.env, "DURA_IMAGE="+c.image, "DURA_SUBNET="+freeSubnet(t))
	for i := range c.names {
		port := freePort(t)
		c.ports = append(c.ports, port)
		c.env = append(c.env, fmt.Sprintf("DURA%d_HTTP_PORT=%d", i+1, port))
	}
	if c.logDir, err = os.MkdirTemp("", c.project+"-logs-"); err != nil {
		t.Fatal(err)
	}
	t.Logf("compose: %s, project %s, image %s, %s", strings.Join(cmd, " "), c.project, c.image, strings.Join(c.env, " "))
	t.Cleanup(c.cleanup)
	return c
}

// cleanup shows the nodes' logs if the test failed, then removes the
// project's containers, network and volumes, and the images built.
func (c *composeCluster) cleanup() {
	for i := range c.names {
		c.saveLogs(i, "last")
	}
	if c.t.Failed() {
		out, _ := c.composeOut(2*time.Minute, "logs", "--no-color", "--tail", "100")
		c.t.Logf("the nodes' last logs:\n%s\nevery container's whole log is in %s", out, c.logDir)
	} else {
		os.RemoveAll(c.logDir)
	}
	if out, err := c.composeOut(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "20"); err != nil {
		c.t.Errorf("compose down: %v\n%s", err, out)
	}
	c.mu.Lock()
	ids := c.images
	c.mu.Unlock()
	for _, id := range ids {
		exec.Command("docker", "image", "rm", "-f", id).Run()
	}
}

// buildImage runs build-image.sh with the given dura.build label and
// returns the image ID.
func (c *composeCluster) buildImage(label string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.dir, "build-image.sh"))
	cmd.Env = append(os.Environ(), "DURA_IMAGE="+c.image, "DURA_BUILD="+label)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("build-image.sh: %v\n%s", err, stderr.String())
	}
	id := strings.TrimSpace(string(out))
	c.mu.Lock()
	c.images = append(c.images, id)
	c.mu.Unlock()
	return id
}

// composeOut runs a compose subcommand of this project.
func (c *composeCluster) composeOut(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append(append([]string{}, c.compose[1:]...), "-p", c.project, "-f", filepath.Join(c.dir, "docker-compose.yml")), args...)
	cmd := exec.CommandContext(ctx, c.compose[0], full...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run is composeOut failing the test on error.
func (c *composeCluster) run(args ...string) {
	c.t.Helper()
	if out, err := c.composeOut(5*time.Minute, args...); err != nil {
		c.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// containerImage is the image ID a service's container runs.
func (c *composeCluster) containerImage(i int) string {
	c.t.Helper()
	out, err := c.composeOut(time.Minute, "ps", "-q", c.names[i])
	if err != nil || strings.TrimSpace(out) == "" {
		c.t.Fatalf("compose ps %s: %v %s", c.names[i], err, out)
	}
	img, err := exec.Command("docker", "inspect", "--format", "{{.Image}}", strings.TrimSpace(out)).Output()
	if err != nil {
		c.t.Fatalf("docker inspect: %v", err)
	}
	return strings.TrimSpace(string(img))
}

// saveLogs keeps the whole log of a service's current container in
// logDir, before it is replaced or removed.
func (c *composeCluster) saveLogs(i int, tag string) {
	out, err := c.composeOut(time.Minute, "ps", "-q", c.names[i])
	id := strings.TrimSpace(out)
	if err != nil || id == "" {
		return
	}
	logs, _ := exec.Command("docker", "logs", "-t", id).CombinedOutput()
	os.WriteFile(filepath.Join(c.logDir, fmt.Sprintf("%s-%s-%s.log", c.names[i], tag, id[:12])), logs, 0o644)
}

// health is the Docker health status of a service's container.
func (c *composeCluster) health(i int) string {
	out, err := c.composeOut(time.Minute, "ps", "-q", c.names[i])
	if err != nil || strings.TrimSpace(out) == "" {
		return "no container"
	}
	h, err := exec.Command("docker", "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", strings.TrimSpace(out)).Output()
	if err != nil {
		return "inspect: " + err.Error()
	}
	return strings.TrimSpace(string(h))
}

// answer is one HTTP exchange with a node.
type answer struct {
	status int
	node   string // X-Dura-Node
	code   string // the error code of an error answer
	body   []byte
	err    error // transport error: no answer
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d from %s: %s", a.status, a.node, bytes.TrimSpace(a.body))
}

// do sends a request to node i with the admin token.
func (c *composeCluster) do(i int, method, path string, body any) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", c.ports[i], path), rd)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, node: resp.Header.Get("X-Dura-Node"), body: b, err: err}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		json.Unmarshal(b, &e)
		a.code = e.Error.Code
	}
	return a
}

// decode reads a 200 answer's JSON into v.
func (a answer) decode(v any) error {
	if a.err != nil {
		return a.err
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("answer %s", a)
	}
	return json.Unmarshal(a.body, v)
}

// clusterInfo is GET /v1/cluster.
type clusterInfo struct {
	Node    string `json:"node"`
	Leader  string `json:"leader"`
	Epoch   uint64 `json:"epoch"`
	Members []struct {
		Name       string `json:"name"`
		Status     string `json:"status"`
		Partitions int    `json:"partitions"`
	} `json:"members"`
}

// settled reports why the nodes in up are not yet a settled cluster of
// len(up) members, or "" when they are: each ready, each sees every one
// of them alive and owning partitions, and all agree on the epoch.
func (c *composeCluster) settled(up []int) string {
	var epoch uint64
	for k, i := range up {
		if a := c.do(i, "GET", "/readyz", nil); a.err != nil || a.status != 200 {
			return fmt.Sprintf("%s not ready: %s", c.names[i], a)
		}
		var info clusterInfo
		if err := c.do(i, "GET", "/v1/cluster", nil).decode(&info); err != nil {
			return fmt.Sprintf("%s: /v1/cluster: %v", c.names[i], err)
		}
		if k == 0 {
			epoch = info.Epoch
		} else if info.Epoch != epoch {
			return fmt.Sprintf("epochs differ: %d, %s has %d", epoch, c.names[i], info.Epoch)
		}
		owning := map[string]bool{}
		for _, m := range info.Members {
			if m.Status == "alive" && m.Partitions > 0 {
				owning[m.Name] = true
			}
		}
		for _, j := range up {
			if !owning[c.names[j]] {
				return fmt.Sprintf("%s does not see %s alive with partitions: %+v", c.names[i], c.names[j], info.Members)
			}
		}
	}
	return ""
}

// waitSettled polls until the nodes in up are settled.
func (c *composeCluster) waitSettled(up []int, within time.Duration) {
	c.t.Helper()
	start := time.Now()
	testutil.PollEvery(c.t, within, pollEvery, "cluster settled", func() string { return c.settled(up) })
	c.t.Logf("settled (%s) after %s", c.upNames(up), time.Since(start).Round(100*time.Millisecond))
}

func (c *composeCluster) upNames(up []int) string {
	var s []string
	for _, i := range up {
		s = append(s, c.names[i])
	}
	return strings.Join(s, ",")
}

// pollEvery is how often the waits here poll: their conditions go through
// docker or write to the cluster, so not every 20 ms.
const pollEvery = 250 * time.Millisecond

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort is a loopback port free right now, below the ephemeral range
// so that it is still free when a stopped container starts again.
func freePort(t *testing.T) int {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// freeSubnet is the first three octets of a /24 in 172.28.0.0/16 that no
// Docker network and no host interface uses.
func freeSubnet(t *testing.T) string {
	t.Helper()
	var used []*net.IPNet
	if ids, err := exec.Command("docker", "network", "ls", "-q").Output(); err == nil {
		args := append([]string{"network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, strings.Fields(string(ids))...)
		out, _ := exec.Command("docker", args...).Output()
		for _, s := range strings.Fields(string(out)) {
			if _, n, err := net.ParseCIDR(s); err == nil {
				used = append(used, n)
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				used = append(used, n)
			}
		}
	}
	b := make([]byte, 1)
	for range 256 {
		rand.Read(b)
		prefix := fmt.Sprintf("172.28.%d", b[0])
		_, mine, _ := net.ParseCIDR(prefix + ".0/24")
		clash := false
		for _, n := range used {
			clash = clash || n.Contains(mine.IP) || mine.Contains(n.IP)
		}
		if !clash {
			return prefix
		}
	}
	t.Fatal("no free /24 in 172.28.0.0/16")
	return ""
}

// envFileValue reads KEY=VALUE from an env file.
func envFileValue(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			return v
		}
	}
	t.Fatalf("%s: no %s", path, key)
	return ""
}
