package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Net is a private network: one network namespace per node, each joined
// by a veth pair to a bridge in the root namespace, where the harness
// (the clients) sits. Faults are iptables rules and qdiscs inside the
// node namespaces, so client traffic is affected only where a fault says
// so.
type Net struct {
	id      string // short, unique: names every interface and namespace
	subnet  string // "10.X.Y", nodes at .1.., the bridge at .254
	bridge  string
	mu      sync.Mutex
	spaces  []string
	netem   bool // the kernel has the netem qdisc
	cleanup []func()
}

// NetAvailable says why network namespaces cannot be used here, or "".
func NetAvailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"ip", "iptables", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found"
		}
	}
	return ""
}

// sweepStale deletes what an earlier run killed before its cleanup left
// behind: namespaces of this harness with no process in them, and their
// bridges once empty.
func sweepStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !staleSpace.MatchString(name) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil && len(strings.TrimSpace(string(pids))) == 0 {
			run("ip", "netns", "del", name)
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		br := strings.TrimSuffix(f[1], ":")
		if !staleBridge.MatchString(br) {
			continue
		}
		if ports, err := exec.Command("ip", "-o", "link", "show", "master", br).Output(); err == nil && len(strings.TrimSpace(string(ports))) == 0 {
			run("ip", "link", "del", br)
		}
	}
}

var (
	staleSpace  = regexp.MustCompile(`^dura-[0-9a-f]{5}-[0-9]+$`)
	staleBridge = regexp.MustCompile(`^dc[0-9a-f]{5}$`)
)

// NewNet creates the bridge; AddNode adds namespaces to it.
func NewNet() (*Net, error) {
	sweepStale()
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)[:5]
	n := &Net{id: id, subnet: fmt.Sprintf("10.%d.%d", 200+int(b[1])%50, b[2]), bridge: "dc" + id}
	if err := run("ip", "link", "add", n.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	n.cleanup = append(n.cleanup, func() { run("ip", "link", "del", n.bridge) })
	if err := runAll(
		[]string{"ip", "addr", "add", n.subnet + ".254/24", "dev", n.bridge},
		[]string{"ip", "link", "set", n.bridge, "up"},
	); err != nil {
		n.Close()
		return nil, err
	}
	// Bridged traffic must not meet the host's firewall rules.
	os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("0"), 0o644)
	n.netem = probeNetem()
	return n, nil
}

// Host is the address of the harness on the network.
func (n *Net) Host() string { return n.subnet + ".254" }

// IP is node i's address (i from 0).
func (n *Net) IP(i int) string { return fmt.Sprintf("%s.%d", n.subnet, i+1) }

// Space is node i's namespace name.
func (n *Net) Space(i int) string { return fmt.Sprintf("dura-%s-%d", n.id, i) }

// AddNode creates namespace i with its veth pair and address.
func (n *Net) AddNode(i int) error {
	ns, host, peer := n.Space(i), fmt.Sprintf("dh%s%d", n.id, i), fmt.Sprintf("dp%s%d", n.id, i)
	if err := run("ip", "netns", "add", ns); err != nil {
		return err
	}
	n.mu.Lock()
	n.spaces = append(n.spaces, ns)
	n.cleanup = append(n.cleanup, func() { run("ip", "netns", "del", ns); run("ip", "link", "del", host) })
	n.mu.Unlock()
	return runAll(
		[]string{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
		[]string{"ip", "link", "set", peer, "netns", ns},
		[]string{"ip", "link", "set", host, "master", n.bridge},
		[]string{"ip", "link", "set", host, "up"},
		[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		[]string{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "name", "eth0"},
		[]string{"ip", "netns", "exec", ns, "ip", "addr", "add", n.IP(i) + "/24", "dev", "eth0"},
		[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"},
	)
}

// Command runs argv inside node i's namespace.
func (n *Net) Command(i int, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Space(i)}, argv...)...)
}

func (n *Net) in(i int, argv ...string) error {
	return run("ip", append([]string{"netns", "exec", n.Space(i)}, argv...)...)
}

// Cut drops all traffic between nodes i and j, both ways.
func (n *Net) Cut(i, j int) error {
	return errors.Join(
		n.in(i, "iptables", "-A", "INPUT", "-s", n.IP(j), "-j", "DROP"),
		n.in(i, "iptables", "-A", "OUTPUT", "-d", n.IP(j), "-j", "DROP"),
		n.in(j, "iptables", "-A", "INPUT", "-s", n.IP(i), "-j", "DROP"),
		n.in(j, "iptables", "-A", "OUTPUT", "-d", n.IP(i), "-j", "DROP"),
	)
}

// Split cuts every node of a from every node of b.
func (n *Net) Split(a, b []int) error {
	for _, i := range a {
		for _, j := range b {
			if err := n.Cut(i, j); err != nil {
				return err
			}
		}
	}
	return nil
}

// Degrade makes node i's link lossy (loss in percent, both ways) and
// slow (delay added to what it sends). Delay needs the netem qdisc; on a
// kernel without it, the delay is left out and reported so (Degrade
// returns the description of what it did).
func (n *Net) Degrade(i int, delay time.Duration, loss int) (string, error) {
	p := fmt.Sprintf("%.2f", float64(loss)/100)
	did := fmt.Sprintf("loss %d%% both ways (iptables statistic)", loss)
	// The harness's own traffic (the clients) is let through first.
	err := errors.Join(
		n.in(i, "iptables", "-A", "INPUT", "-s", n.Host(), "-j", "ACCEPT"),
		n.in(i, "iptables", "-A", "OUTPUT", "-d", n.Host(), "-j", "ACCEPT"),
		n.in(i, "iptables", "-A", "INPUT", "-s", n.subnet+".0/24", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"),
		n.in(i, "iptables", "-A", "OUTPUT", "-d", n.subnet+".0/24", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"),
	)
	if err != nil {
		return "", err
	}
	if delay > 0 {
		if n.netem {
			if err := n.in(i, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", fmt.Sprintf("%dms", delay.Milliseconds())); err != nil {
				return did, err
			}
			did += fmt.Sprintf(", delay %s (netem)", delay)
		} else {
			did += fmt.Sprintf(", delay %s NOT APPLIED: this kernel has no netem qdisc", delay)
		}
	}
	return did, nil
}

// Heal removes every fault of node i's namespace.
func (n *Net) Heal(i int) error {
	err := n.in(i, "iptables", "-F")
	n.in(i, "tc", "qdisc", "del", "dev", "eth0", "root") // absent unless degraded
	return err
}

// HealAll removes every fault.
func (n *Net) HealAll(nodes int) error {
	var errs []error
	for i := range nodes {
		errs = append(errs, n.Heal(i))
	}
	return errors.Join(errs...)
}

// Close deletes the namespaces, interfaces and bridge.
func (n *Net) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.cleanup) - 1; i >= 0; i-- {
		n.cleanup[i]()
	}
	n.cleanup = nil
}

// probeNetem checks whether the kernel has the netem qdisc.
func probeNetem() bool {
	return exec.Command("sh", "-c", `ip link add dcprobe0 type dummy 2>/dev/null || exit 1
tc qdisc add dev dcprobe0 root netem delay 1ms 2>/dev/null; r=$?; ip link del dcprobe0; exit $r`).Run() == nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}
