package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
)

// tallyModule is a JavaScript module of two classes: Tally counts in
// SQLite, Relay calls Tally objects through env (wherever they run).
const tallyModule = `import { DurableObject } from "cloudflare:workers";

export class Tally extends DurableObject {
  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS n (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
    });
  }
  async fetch(request: Request): Promise<Response> {
    if (request.method === "POST") return Response.json({ value: this.add() });
    return Response.json({ value: this.get() });
  }
  add(): number {
    return this.ctx.storage.sql.exec("INSERT INTO n VALUES ('v', 1) ON CONFLICT(k) DO UPDATE SET v = v + 1 RETURNING v").one().v as number;
  }
  get(): number { return (this.ctx.storage.sql.exec("SELECT v FROM n").toArray()[0]?.v as number) ?? 0; }
}

export class Relay extends DurableObject {
  async poke(target: string) {
    const res = await this.env.Tally.getByName(target).fetch("http://tally/", { method: "POST" });
    const { value } = await res.json();
    return { fetched: value, read: await this.env.Tally.getByName(target).get() };
  }
}
`

func writeModule(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tally.ts")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestE2EJavaScriptDeployAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	n := e2eStart(t, dir)
	vars := map[string]string{"DURA_ADDR": "http://" + n.Addr}
	out := must(t, runEnv(t, vars, "", "deploy", writeModule(t, tallyModule)))
	if !strings.Contains(out.stdout, "deployed tally version 1: Relay, Tally") {
		t.Fatalf("deploy: %v", out)
	}
	bad := runEnv(t, vars, "", "deploy", writeModule(t, "export class {"), "--module", "broken")
	if bad.code != 1 || !strings.Contains(bad.stderr, "BAD_REQUEST (400): broken.ts:1:") {
		t.Fatalf("deploy of a syntax error: %v", bad)
	}
	ctx := context.Background()
	got, err := n.client().CallMethod(ctx, "Relay", "r", "poke", "t1")
	if err != nil || string(got) != `{"fetched":1,"read":1}` {
		t.Fatalf("poke: %s %v", got, err)
	}
	n.Cmd.Process.Signal(syscall.SIGTERM)
	if err := <-n.Done; err != nil {
		t.Fatalf("stop: %v\n%s", err, n.Log())
	}
	n = e2eStart(t, dir)
	vars["DURA_ADDR"] = "http://" + n.Addr
	list := must(t, runEnv(t, vars, "", "modules"))
	if !strings.Contains(list.stdout, "tally") || !strings.Contains(list.stdout, "Relay,Tally") {
		t.Fatalf("modules after a restart: %v", list)
	}
	if got, err := n.client().CallMethod(ctx, "Tally", "t1", "get"); err != nil || string(got) != "1" {
		t.Fatalf("get after a restart: %s %v", got, err)
	}
}

// TestE2EJavaScriptThreeNodes: a module deployed through one node runs on
// all three; a JavaScript class calls another through env across nodes;
// deploys under load reset objects without losing an acknowledged write.
func TestE2EJavaScriptThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	seed := testutil.FreeAddr(t)
	var nodes []*e2eNode
	for i := range 3 {
		gossip := seed
		if i > 0 {
			gossip = testutil.FreeAddr(t)
		}
		args := []string{"--name", fmt.Sprint("n", i+1), "--gossip", gossip, "--raft", testutil.FreeAddr(t), "--bootstrap-expect", "3"}
		if i > 0 {
			args = append(args, "--join", seed)
		}
		nodes = append(nodes, e2eLaunch(t, t.TempDir(), args...))
	}
	for _, n := range nodes {
		n.waitReady(t, 60*time.Second)
	}
	ctx := context.Background()
	if _, err := nodes[1].client().Deploy(ctx, "tally", []byte(tallyModule), false); err != nil {
		t.Fatal(err)
	}
	executors := map[string]bool{}
	for i := range 12 {
		entry := nodes[i%3].client()
		testutil.Poll(t, 10*time.Second, "the module on every node", func() string {
			got, err := entry.CallMethod(ctx, "Relay", fmt.Sprint("r", i), "poke", fmt.Sprint("t", i))
			if err != nil {
				return err.Error()
			}
			if string(got) != `{"fetched":1,"read":1}` {
				t.Fatalf("poke t%d through n%d: %s", i, i%3+1, got)
			}
			return ""
		})
		resp, err := nodes[(i+1)%3].client().Call(ctx, "GET", "Tally", fmt.Sprint("t", i), "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		executors[resp.Header.Get(rpc.HeaderNode)] = true
		var v struct{ Value int }
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.Value != 1 {
			t.Fatalf("t%d = %d", i, v.Value)
		}
	}
	if len(executors) < 2 {
		t.Fatalf("objects ran on %v only", executors)
	}
	deployUnderLoad(t, nodes)
}

func deployUnderLoad(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	ctx := context.Background()
	stop := make(chan struct{})
	var mu sync.Mutex
	acked := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := nodes[w%3].client()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprint("load", (w+i)%5)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := c.Call(cctx, "POST", "Tally", name, "/", nil)
				if err == nil {
					var v struct{ Value int }
					json.NewDecoder(resp.Body).Decode(&v)
					resp.Body.Close()
					mu.Lock()
					acked[name] = max(acked[name], v.Value)
					mu.Unlock()
				}
				cancel()
			}
		}()
	}
	for v := 2; v <= 4; v++ {
		info, err := nodes[v%3].client().Deploy(ctx, "tally", []byte(tallyModule+fmt.Sprintf("\n// version %d\n", v)), false)
		if err != nil || info.Version != v {
			t.Fatalf("deploy %d: %+v %v", v, info, err)
		}
	}
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no write acknowledged")
	}
	for name, v := range acked {
		got, err := nodes[0].client().CallMethod(ctx, "Tally", name, "get")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		json.Unmarshal(got, &n)
		if n < v {
			t.Errorf("%s = %d, but %d was acknowledged", name, n, v)
		}
	}
}
