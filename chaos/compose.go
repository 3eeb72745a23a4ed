package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dura-dev/dura/rpc"
)

// composeProject runs the nodes as the containers of
// deploy/docker-compose.yml, under a project name, host ports, subnet and
// image of its own. Process faults become container operations: kill -9
// is `kill -s SIGKILL`, SIGSTOP is `pause` (the cgroup freezer), SIGTERM
// is `stop`, a restart is `start`.
type composeProject struct {
	compose []string // "docker compose" or "docker-compose"
	file    string
	project string
	image   string
	env     []string
}

// ComposeAvailable says why the compose cluster cannot run here, or "".
func ComposeAvailable() string {
	if exec.Command("docker", "info").Run() != nil {
		return "docker info fails"
	}
	if _, err := composeCommand(); err != nil {
		return err.Error()
	}
	return ""
}

func composeCommand() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, nil
	}
	return nil, fmt.Errorf("neither 'docker compose' nor 'docker-compose' works")
}

// StartCompose builds the image (deploy/build-image.sh), brings the
// three-node compose cluster up and waits until it is ready. repo is the
// repository's root.
func StartCompose(ctx context.Context, repo string) (*Cluster, error) {
	cmd, err := composeCommand()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	p := &composeProject{compose: cmd, file: filepath.Join(repo, "deploy", "docker-compose.yml"),
		project: "durachaos" + id, image: "dura:chaos-" + id}
	build := exec.CommandContext(ctx, filepath.Join(repo, "deploy", "build-image.sh"))
	build.Env = append(os.Environ(), "DURA_IMAGE="+p.image)
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build image: %v\n%s", err, out)
	}
	c := &Cluster{opt: ClusterOptions{Nodes: 3, Token: composeToken(repo)}, compose: p}
	p.env = []string{"DURA_IMAGE=" + p.image, fmt.Sprintf("DURA_SUBNET=172.29.%d", 100+int(b[0])%100)}
	for i := range 3 {
		port := freePort()
		p.env = append(p.env, fmt.Sprintf("DURA%d_HTTP_PORT=%s", i+1, port[strings.LastIndex(port, ":")+1:]))
		nd := &Node{Index: i, Name: fmt.Sprintf("dura%d", i+1), HTTP: port, running: true}
		nd.hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		nd.client = rpc.NewClient("http://"+nd.HTTP, nd.hc)
		nd.admin = nd.client.WithToken(c.opt.Token)
		c.Nodes = append(c.Nodes, nd)
	}
	if err := p.run("up", "-d"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.WaitReady(ctx, 120*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// composeToken reads the development admin token of deploy/local.env.
func composeToken(repo string) string {
	b, _ := os.ReadFile(filepath.Join(repo, "deploy", "local.env"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DURA_ADMIN_TOKEN="); ok {
			return v
		}
	}
	return ""
}

func (p *composeProject) run(args ...string) error {
	argv := append(append(append([]string{}, p.compose[1:]...), "-p", p.project, "-f", p.file), args...)
	cmd := exec.Command(p.compose[0], argv...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", strings.Join(p.compose, " "), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// logs returns the tail of every container's log.
func (p *composeProject) logs(tail int) string {
	argv := append(append([]string{}, p.compose[1:]...), "-p", p.project, "-f", p.file, "logs", "--no-color", "--tail", fmt.Sprint(tail))
	cmd := exec.Command(p.compose[0], argv...)
	cmd.Env = append(os.Environ(), p.env...)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// close removes the containers, network, volumes and image.
func (p *composeProject) close() {
	p.run("down", "-v", "--remove-orphans", "-t", "5")
	exec.Command("docker", "rmi", "-f", p.image).Run()
}
