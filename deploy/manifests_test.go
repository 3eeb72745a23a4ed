package deploy

// Checks of the deployment files that need no cluster: every YAML file
// parses, the Kubernetes objects refer to each other consistently, the
// compose file and the systemd unit agree with the image and with dura's
// flags. There is no kubectl here: these are the checks a cluster would
// make first, not a substitute for applying the files.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// object is one Kubernetes document, loosely typed.
type object = map[string]any

// docs parses every YAML document of a file.
func docs(t *testing.T, path string) []object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// get walks a path of map keys and list indexes ("spec.template.spec").
func get(o any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch v := o.(type) {
		case map[string]any:
			o = v[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(v) {
				return nil
			}
			o = v[i]
		default:
			return nil
		}
	}
	return o
}

func str(o any, path string) string {
	s, _ := get(o, path).(string)
	return s
}

func list(o any, path string) []any {
	l, _ := get(o, path).([]any)
	return l
}

// kubeObjects loads deploy/kubernetes/*.yaml by kind and name.
func kubeObjects(t *testing.T) map[string]object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kubernetes files: %v", err)
	}
	objs := map[string]object{}
	for _, f := range files {
		for _, o := range docs(t, f) {
			kind, name := str(o, "kind"), str(o, "metadata.name")
			if str(o, "apiVersion") == "" || kind == "" {
				t.Errorf("%s: a document without apiVersion or kind", f)
			}
			if kind == "Kustomization" {
				for _, r := range list(o, "resources") {
					if _, err := os.Stat(filepath.Join("kubernetes", r.(string))); err != nil {
						t.Errorf("%s: resource %v: %v", f, r, err)
					}
				}
				continue
			}
			if name == "" {
				t.Errorf("%s: a %s without metadata.name", f, kind)
			}
			objs[kind+"/"+name] = o
		}
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	objs := kubeObjects(t)
	sts := objs["StatefulSet/dura"]
	if sts == nil {
		t.Fatalf("no StatefulSet dura among %v", keys(objs))
	}
	labels, _ := get(sts, "spec.template.metadata.labels").(map[string]any)
	matches := func(sel any) bool {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			return false
		}
		for k, v := range m {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(get(sts, "spec.selector.matchLabels")) {
		t.Errorf("the StatefulSet's selector does not match its pod labels %v", labels)
	}
	pod := get(sts, "spec.template.spec")
	c := get(pod, "containers.0")
	env := map[string]string{}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = str(e, "value")
	}
	checkEnvNames(t, "statefulset.yaml", keys(env))

	// Forming: all three start together and find each other by name.
	replicas, _ := get(sts, "spec.replicas").(int)
	if strconv.Itoa(replicas) != env["DURA_BOOTSTRAP_EXPECT"] {
		t.Errorf("replicas %d but DURA_BOOTSTRAP_EXPECT %q", replicas, env["DURA_BOOTSTRAP_EXPECT"])
	}
	if str(sts, "spec.podManagementPolicy") != "Parallel" {
		t.Errorf("podManagementPolicy must be Parallel: no pod is ready before all %d have met", replicas)
	}
	peers := objs["Service/"+str(sts, "spec.serviceName")]
	if peers == nil {
		t.Fatalf("serviceName %q names no Service", str(sts, "spec.serviceName"))
	}
	if str(peers, "spec.clusterIP") != "None" || get(peers, "spec.publishNotReadyAddresses") != true {
		t.Errorf("Service %s must be headless and publish pods before they are ready", str(peers, "metadata.name"))
	}
	for i := range replicas {
		host := fmt.Sprintf("%s-%d.%s", str(sts, "metadata.name"), i, str(peers, "metadata.name"))
		if !strings.Contains(env["DURA_JOIN"], host+":7946") {
			t.Errorf("DURA_JOIN %q does not list %s:7946", env["DURA_JOIN"], host)
		}
	}
	if env["DURA_ADVERTISE"] != "$(DURA_NAME)."+str(peers, "metadata.name") {
		t.Errorf("DURA_ADVERTISE %q is not the pod's name under the headless Service", env["DURA_ADVERTISE"])
	}

	// Ports: every Service port targets a named container port.
	ports := map[string]int{}
	for _, p := range list(c, "ports") {
		ports[str(p, "name")], _ = get(p, "containerPort").(int)
	}
	for _, addr := range []string{"DURA_HTTP", "DURA_GOSSIP", "DURA_RAFT"} {
		if _, port, _ := strings.Cut(env[addr], ":"); port == "" || !slices.Contains(values(ports), atoi(port)) {
			t.Errorf("%s %q listens on no declared container port %v", addr, env[addr], ports)
		}
	}
	for key, svc := range objs {
		if !strings.HasPrefix(key, "Service/") {
			continue
		}
		if !matches(get(svc, "spec.selector")) {
			t.Errorf("%s does not select the StatefulSet's pods", key)
		}
		for _, p := range list(svc, "spec.ports") {
			if _, ok := ports[str(p, "targetPort")]; !ok {
				t.Errorf("%s port %s targets %q, not a container port", key, str(p, "name"), str(p, "targetPort"))
			}
		}
	}
	if !matches(get(objs["PodDisruptionBudget/dura"], "spec.selector.matchLabels")) {
		t.Errorf("the PodDisruptionBudget does not select the pods")
	}
	if mu, _ := get(objs["PodDisruptionBudget/dura"], "spec.maxUnavailable").(int); mu != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", get(objs["PodDisruptionBudget/dura"], "spec.maxUnavailable"))
	}

	// Probes: readiness on /readyz, liveness on /healthz, on the HTTP port.
	if str(c, "readinessProbe.httpGet.path") != "/readyz" || str(c, "readinessProbe.httpGet.port") != "http" {
		t.Errorf("readinessProbe %v, want GET /readyz on http", get(c, "readinessProbe"))
	}
	if str(c, "livenessProbe.httpGet.path") != "/healthz" {
		t.Errorf("livenessProbe %v, want GET /healthz", get(c, "livenessProbe"))
	}

	// Shutdown: the grace period outlasts the node's own timeout.
	grace, _ := get(pod, "terminationGracePeriodSeconds").(int)
	shutdown, err := time.ParseDuration(env["DURA_SHUTDOWN_TIMEOUT"])
	if err != nil || time.Duration(grace)*time.Second <= shutdown+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d must exceed DURA_SHUTDOWN_TIMEOUT %q by 10 s at least", grace, env["DURA_SHUTDOWN_TIMEOUT"])
	}

	// Secrets: files of a Secret volume holding the keys the env names.
	secretVol := map[string]string{} // volume name -> Secret name
	for _, v := range list(pod, "volumes") {
		if s := str(v, "secret.secretName"); s != "" {
			secretVol[str(v, "name")] = s
		}
	}
	mounts := map[string]string{} // mount path -> volume
	for _, m := range list(c, "volumeMounts") {
		mounts[str(m, "mountPath")] = str(m, "name")
	}
	for _, name := range []string{"DURA_SECRET_FILE", "DURA_ADMIN_TOKEN_FILE"} {
		dir, key := filepath.Split(env[name])
		sec := objs["Secret/"+secretVol[mounts[strings.TrimSuffix(dir, "/")]]]
		if sec == nil || get(sec, "stringData."+key) == nil {
			t.Errorf("%s %q is not a key of a mounted Secret", name, env[name])
		}
	}
	if len(str(objs["Secret/dura-secrets"], "stringData.secret")) < 16 {
		t.Errorf("the example secret is shorter than the 16 bytes dura serve requires")
	}

	// Storage and user: the data volume is a claim template, the pod runs
	// as the image's user and owns the volume.
	claims := map[string]bool{}
	for _, v := range list(sts, "spec.volumeClaimTemplates") {
		claims[str(v, "metadata.name")] = true
	}
	if !claims[mounts[env["DURA_DATA"]]] {
		t.Errorf("DURA_DATA %q is not on a volumeClaimTemplate (mounts %v)", env["DURA_DATA"], mounts)
	}
	user := imageUser(t)
	for _, k := range []string{"runAsUser", "fsGroup"} {
		if v, _ := get(pod, "securityContext."+k).(int); strconv.Itoa(v) != user {
			t.Errorf("securityContext.%s %v, want the image's user %s", k, get(pod, "securityContext."+k), user)
		}
	}
	if get(c, "securityContext.readOnlyRootFilesystem") == true && mounts["/tmp"] == "" {
		t.Errorf("a read-only root needs a writable /tmp for SQLite")
	}
}

func TestComposeFile(t *testing.T) {
	f := docs(t, "docker-compose.yml")
	if len(f) != 1 {
		t.Fatalf("docker-compose.yml: %d documents", len(f))
	}
	services, _ := get(f[0], "services").(map[string]any)
	if len(services) != 3 {
		t.Fatalf("%d services, want 3", len(services))
	}
	localEnv := readEnvFile(t, "local.env")
	checkEnvNames(t, "local.env", keys(localEnv))
	if len(localEnv["DURA_SECRET"]) < 16 || localEnv["DURA_ADMIN_TOKEN"] == "" {
		t.Errorf("local.env needs DURA_SECRET (16 bytes at least) and DURA_ADMIN_TOKEN")
	}
	for name, s := range services {
		env, _ := get(s, "environment").(map[string]any)
		checkEnvNames(t, "docker-compose.yml", keys(env))
		if env["DURA_NAME"] != name || env["DURA_ADVERTISE"] != name {
			t.Errorf("%s: DURA_NAME %v, DURA_ADVERTISE %v: both should be the service name", name, env["DURA_NAME"], env["DURA_ADVERTISE"])
		}
		join, _ := env["DURA_JOIN"].(string)
		for other := range services {
			if (other != name) != strings.Contains(join, other+":7946") {
				t.Errorf("%s: DURA_JOIN %q should list exactly the other nodes' gossip addresses (never its own: it would count as joined)", name, join)
			}
		}
		if env["DURA_BOOTSTRAP_EXPECT"] != "3" {
			t.Errorf("%s: DURA_BOOTSTRAP_EXPECT %v", name, env["DURA_BOOTSTRAP_EXPECT"])
		}
		for _, p := range list(s, "ports") {
			if !strings.HasPrefix(p.(string), "127.0.0.1:") {
				t.Errorf("%s: port %v is published beyond loopback", name, p)
			}
		}
		if test := fmt.Sprint(get(s, "healthcheck.test")); !strings.Contains(test, "/dura health --ready") {
			t.Errorf("%s: healthcheck %s", name, test)
		}
		if get(s, "restart") == nil || get(s, "stop_grace_period") == nil || str(s, "env_file") != "local.env" {
			t.Errorf("%s: needs restart, stop_grace_period and env_file local.env", name)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := readUnit(t, "systemd/dura.service")
	env := readEnvFile(t, "systemd/dura.env")
	checkEnvNames(t, "systemd/dura.env", keys(env))
	if unit["Service.ExecStart"] != "/usr/local/bin/dura serve" || unit["Service.EnvironmentFile"] != "/etc/dura/dura.env" {
		t.Errorf("ExecStart %q, EnvironmentFile %q", unit["Service.ExecStart"], unit["Service.EnvironmentFile"])
	}
	if env["DURA_DATA"] != "/var/lib/"+unit["Service.StateDirectory"] {
		t.Errorf("DURA_DATA %q is not the StateDirectory %q", env["DURA_DATA"], unit["Service.StateDirectory"])
	}
	stop, err := strconv.Atoi(unit["Service.TimeoutStopSec"])
	shutdown, err2 := time.ParseDuration(env["DURA_SHUTDOWN_TIMEOUT"])
	if err != nil || err2 != nil || time.Duration(stop)*time.Second <= shutdown+10*time.Second {
		t.Errorf("TimeoutStopSec %q must exceed DURA_SHUTDOWN_TIMEOUT %q by 10 s at least", unit["Service.TimeoutStopSec"], env["DURA_SHUTDOWN_TIMEOUT"])
	}
	if unit["Service.User"] == "" || unit["Service.User"] == "root" || unit["Service.Restart"] != "on-failure" {
		t.Errorf("User %q, Restart %q", unit["Service.User"], unit["Service.Restart"])
	}
	if env["DURA_SECRET"] != "" || env["DURA_SECRET_FILE"] == "" {
		t.Errorf("the environment file should name a secret file, not hold the secret")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{"\nFROM scratch\n", "\nVOLUME [\"/data\"]\n", `CMD ["/dura", "health", "--ready"`, "\nENTRYPOINT [\"/dura\"]\n"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", strings.TrimSpace(want))
		}
	}
	if u := imageUser(t); u == "0" || u == "" {
		t.Errorf("image user %q: want a numeric non-root user", u)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*(DURA_[A-Z_]+)=`).FindAllStringSubmatch(df, -1) {
		names = append(names, m[1])
	}
	checkEnvNames(t, "Dockerfile", names)
}

// imageUser is the numeric user of the Dockerfile's USER line.
func imageUser(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+)(:\d+)?$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("Dockerfile: no numeric USER line")
	}
	return m[1]
}

// checkEnvNames fails for DURA_* variables that name no flag of any dura
// command (each flag --x-y is also DURA_X_Y), which would be ignored.
func checkEnvNames(t *testing.T, file string, names []string) {
	t.Helper()
	flags := duraFlags(t)
	for _, n := range names {
		if !strings.HasPrefix(n, "DURA_") {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(n, "DURA_"), "_", "-"))
		if !flags[flag] {
			t.Errorf("%s: %s is not a dura flag (--%s)", file, n, flag)
		}
	}
}

var flagDef = regexp.MustCompile(`fs\.(?:String|Bool|Int|Int64|Duration)(?:Var)?\((?:&[\w.]+, )?"([a-z0-9-]+)"`)

// duraFlags reads the flag names defined in the source of cmd/dura and of
// package server (serve's flags).
func duraFlags(t *testing.T) map[string]bool {
	t.Helper()
	var files []string
	for _, dir := range []string{"../cmd/dura", "../server"} {
		fs, err := filepath.Glob(dir + "/*.go")
		if err != nil || len(fs) == 0 {
			t.Fatalf("%s: %v", dir, err)
		}
		files = append(files, fs...)
	}
	flags := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagDef.FindAllStringSubmatch(string(b), -1) {
			flags[m[1]] = true
		}
	}
	for _, must := range []string{"name", "advertise", "join", "bootstrap-expect", "secret-file", "addr"} {
		if !flags[must] {
			t.Fatalf("found no --%s among cmd/dura's flags %v: the pattern is out of date", must, flags)
		}
	}
	return flags
}

// readEnvFile reads KEY=VALUE lines, skipping comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// readUnit reads a systemd unit as "Section.Key" -> value.
func readUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s: %q", path, line)
			}
			unit[section+"."+k] = v
		}
	}
	for _, s := range []string{"Unit.Description", "Service.ExecStart", "Install.WantedBy"} {
		if unit[s] == "" {
			t.Errorf("%s: no %s", path, s)
		}
	}
	return unit
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func values(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
