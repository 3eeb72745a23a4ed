package jsrt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/jsrt"
)

func features(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/features.ts")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decode is the JSON of r's body as a generic value.
func decode(t *testing.T, r response) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", r.status, r.body, err)
	}
	return v
}

// roundTrip is v as JSON would decode it, to compare with answers.
func roundTrip(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

func TestDeployErrors(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("taken", `import { DurableObject } from "dura"; export class Taken extends DurableObject {}`)
	cases := []struct {
		name, module, contentType, src string
		status                         int
		code, message                  string
	}{
		{"syntax error", "bad", "", "import { DurableObject } from \"cloudflare:workers\";\nexport class A extends DurableObject {\n  fetch( {\n}", 400, "BAD_REQUEST", "bad.ts:4:"},
		{"no class", "none", "", `export const x = 1;`, 400, "BAD_REQUEST", "exports no class extending DurableObject"},
		{"plain class", "plain", "", `export class P {}`, 400, "BAD_REQUEST", "exports no class"},
		{"built-in class", "builtin", "", `import { DurableObject } from "cloudflare:workers"; export class counter extends DurableObject {}`, 409, "CONSTRAINT", `class "counter" is a built-in class`},
		{"db class", "builtin", "", `import { DurableObject } from "cloudflare:workers"; export class db extends DurableObject {}`, 409, "CONSTRAINT", "built-in"},
		{"another module's class", "other", "", `import { DurableObject } from "cloudflare:workers"; export class Taken extends DurableObject {}`, 409, "CONSTRAINT", `already defined by module "taken"`},
		{"bad module name", "-x", "", `export class P {}`, 400, "BAD_REQUEST", "module name"},
		{"class name Dura refuses", "dollar", "", `import { DurableObject } from "cloudflare:workers"; export class $Money extends DurableObject {}`, 400, "BAD_REQUEST", `exported class "$Money"`},
		{"top-level throw", "thrower", "", `import { DurableObject } from "cloudflare:workers"; throw new RangeError("nope"); export class T extends DurableObject {}`, 400, "BAD_REQUEST", "RangeError: nope"},
		{"unresolved import", "imports", "", `import { x } from "./x"; console.log(x); export class T {}`, 400, "BAD_REQUEST", `Could not resolve "./x"`},
		{"types in javascript", "jsmod", "application/javascript", `let x: number = 1; export class T {}`, 400, "BAD_REQUEST", "jsmod.js:1:"},
		{"javascript", "jsmod", "text/javascript", `import { DurableObject } from "cloudflare:workers"; export class Js extends DurableObject { hi() { return "hi"; } }`, 200, "", ""},
		{"redeploy same module", "taken", "", `import { DurableObject } from "dura"; export class Taken extends DurableObject { v() { return 2; } }`, 200, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.do("PUT", "/v1/modules/"+c.module, c.contentType, c.src)
			want(t, r, c.status, c.code)
			if c.message != "" && !strings.Contains(r.message(), c.message) {
				t.Fatalf("message %q does not contain %q", r.message(), c.message)
			}
		})
	}
	if r := n.call("Js", "x", "hi"); r.String() != `"hi"` {
		t.Fatalf("javascript class: %d %s", r.status, r)
	}
}

func TestModulesAPI(t *testing.T) {
	n := startJS(t, nodeOpts{})
	before := time.Now().UnixMilli()
	src := features(t)
	r := n.deploy("features", src)
	if got, want := decode(t, r), roundTrip(map[string]any{"module": "features", "version": 1, "classes": []string{"Features"}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("deploy: got %v, want %v", got, want)
	}
	if r := n.deploy("features", src+"\n// v2\n"); r.json(t)["version"] != 2.0 {
		t.Fatalf("second deploy: %s", r)
	}
	list := n.do("GET", "/v1/modules", "", "")
	var l struct {
		Modules []struct {
			Module     string   `json:"module"`
			Version    int      `json:"version"`
			Classes    []string `json:"classes"`
			Bytes      int      `json:"bytes"`
			DeployedAt int64    `json:"deployed_at"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(list.body, &l); err != nil || len(l.Modules) != 1 {
		t.Fatalf("list: %s (%v)", list, err)
	}
	m := l.Modules[0]
	if m.Module != "features" || m.Version != 2 || m.Bytes != len(src)+len("\n// v2\n") || m.DeployedAt < before || !reflect.DeepEqual(m.Classes, []string{"Features"}) {
		t.Fatalf("list entry: %+v", m)
	}
	if got := n.do("GET", "/v1/modules/features", "", ""); string(got.body) != strings.TrimSpace(src+"\n// v2\n") {
		t.Fatalf("source: %q", got.body)
	}
	want(t, n.do("GET", "/v1/modules/nosuch", "", ""), 404, "NOT_FOUND")
	want(t, n.do("DELETE", "/v1/modules/nosuch", "", ""), 404, "NOT_FOUND")
	want(t, n.call("Features", "a", "inc"), 200, "")
	want(t, n.do("DELETE", "/v1/modules/features", "", ""), 200, "")
	want(t, n.call("Features", "a", "inc"), 404, "UNKNOWN_CLASS")
	want(t, n.do("GET", "/objects/Features/a/echo", "", ""), 404, "UNKNOWN_CLASS")
	if r := n.do("GET", "/v1/modules", "", ""); r.String() != `{"modules":[]}` {
		t.Fatalf("list after delete: %s", r)
	}
	// Deployed again, the class finds the storage its objects kept; the
	// same source deployed twice is two versions.
	if r := n.deploy("features", src); r.json(t)["version"] != 1.0 {
		t.Fatalf("deploy after delete: %s", r)
	}
	if r := n.deploy("features", src); r.json(t)["version"] != 2.0 {
		t.Fatalf("the same source again: %s", r)
	}
	want(t, n.call("Features", "b", "add", "kept"), 200, "")
	if r := n.call("Features", "b", "count"); r.String() != "1" {
		t.Fatalf("count: %s", r)
	}
}

func TestFetch(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("features", features(t))
	r := n.do("PUT", "/objects/Features/f/echo?q=a%20b", "text/plain", "hello body")
	want(t, r, 201, "")
	if r.String() != "hello body" || r.header.Get("X-Method") != "PUT" || r.header.Get("X-Query") != "a b" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("echo: %s %v", r, r.header)
	}
	for _, tc := range []struct{ body, want string }{
		{"", `{"type":"text/plain","names":["x-one","x-two"],"cloned":"1","body":null,"used":false}`},
		{"héllo", `{"type":"text/plain","names":["x-one","x-two"],"cloned":"1","body":"héllo","used":true}`},
	} {
		req, err := http.NewRequest("POST", n.url+"/objects/Features/f/request", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-One", "1")
		req.Header.Add("X-Two", "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != tc.want || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("request with body %q: %d %s %v, want %s", tc.body, resp.StatusCode, b, resp.Header, tc.want)
		}
	}
	r = n.do("GET", "/objects/Features/f/json", "", "")
	if r.status != 202 || r.String() != `{"text":"{\"a\":[1,\"é\"]}","ok":true,"st":"Accepted","used":false,"n":14}` ||
		r.header.Get("Content-Type") != "application/vnd.x+json" || r.header.Get("X-A") != "b" {
		t.Fatalf("json: %d %s %v", r.status, r, r.header)
	}
	r = n.do("GET", "/objects/Features/f/json?nothing", "", "")
	if r.status != 200 || r.String() != "" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("json(undefined): %d %q %v", r.status, r, r.header)
	}
	if r := n.do("GET", "/objects/Features/f/bytes", "", ""); r.String() != "hi" {
		t.Fatalf("bytes: %s", r)
	}
	want(t, n.do("GET", "/objects/Features/f/nosuch", "", ""), 404, "")
}

func TestStorage(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("features", features(t))
	cases := []struct {
		method string
		want   map[string]any
	}{
		{"sql", map[string]any{
			"written": 2, "columns": []string{"id", "name", "data", "score"}, "rowsRead": 2, "firstName": "a", "idType": "number",
			"blob": []int{1, 2, 3}, "blobIsBuffer": true, "rest": []string{"b"}, "raw": []any{[]any{"a", 1.5}, []any{"b", 2}},
			"one": 2, "oneErr": "Expected exactly one result from SQL query, but got no results.", "size": true,
		}},
		{"kv", map[string]any{
			"single": map[string]any{"a": 1}, "many": map[string]any{"k2": "two", "k3": []int{3}},
			"all": []string{"k1", "k2", "k3", "other"}, "prefixed": []string{"k3", "k2"}, "ranged": []string{"k2"},
			"after": []string{"k3", "other"}, "del1": true, "delMissing": false, "delMany": 2, "left": []string{"other"},
			"afterAll": 0, "missing": true,
		}},
		{"globals", map[string]any{
			"href": "https://example.com:8443/p/a%20b?x=1&y=two&z=3+4#h", "host": "example.com:8443", "pathname": "/p/a%20b",
			"search": "?x=1&y=two&z=3+4", "x": "1", "params": "a=1&b=x+y",
			"forms": [][]string{{"a", "1 2"}, {"b", "é+"}, {"c", ""}, {"d", "%zz%4"}, {"e", "\uFFFD"}, {"", "v"}}, "header": "1, 2", "hasHeader": false,
			"encLen": 6, "dec": "héllo", "b64": "aGkh", "unb64": "hi!", "uuid": true, "rndLen": 8,
			"cloneDate": true, "cloneMap": 1, "cloneArr": 2, "json": 1, "log": "function",
		}},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			r := n.call("Features", "s-"+c.method, c.method)
			want(t, r, 200, "")
			if got, want := decode(t, r), roundTrip(c.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("features", features(t))
	cases := []struct {
		name, method, args string
		status             int
		code, body         string
	}{
		{"result", "add", `["x"]`, 200, "", "1"},
		{"empty body is no arguments", "count", ``, 200, "", "1"},
		{"undefined is null", "nothing", `[]`, 200, "", "null"},
		{"exception", "throwType", `[]`, 500, "EXCEPTION", "TypeError: bad thing"},
		{"uncaught storage error keeps its code", "add", `["x"]`, 409, "CONSTRAINT", ""},
		{"caught storage error", "catchConstraint", `["y"]`, 200, "", `{"code":"CONSTRAINT"`},
		{"a failed event writes nothing", "addThenThrow", `["z"]`, 500, "EXCEPTION", "Error: after the write"},
		{"count after the failures", "count", `[]`, 200, "", "2"},
		{"transactionSync", "txSync", `["t"]`, 200, "", "3"},
		{"transaction", "txAsync", `["a"]`, 200, "", "4"},
		{"explicit BEGIN and ROLLBACK", "explicitBegin", `["b"]`, 200, "", "4"},
		{"a promise that never settles", "never", `[]`, 500, "EXCEPTION", "never settled"},
		{"waitUntil work is part of the event", "later", `["w"]`, 200, "", `"ok"`},
		{"count after waitUntil", "count", `[]`, 200, "", "5"},
		{"underscore", "_hidden", `[]`, 404, "NOT_FOUND", ""},
		{"constructor", "constructor", `[]`, 404, "NOT_FOUND", ""},
		{"fetch", "fetch", `[]`, 404, "NOT_FOUND", ""},
		{"alarm", "alarm", `[]`, 404, "NOT_FOUND", ""},
		{"webSocket handlers", "webSocketMessage", `[]`, 404, "NOT_FOUND", ""},
		{"Object.prototype", "toString", `[]`, 404, "NOT_FOUND", ""},
		{"no such method", "nosuch", `[]`, 404, "NOT_FOUND", ""},
		{"arguments not an array", "add", `{"a":1}`, 400, "BAD_REQUEST", ""},
		{"arguments not JSON", "add", `[`, 400, "BAD_REQUEST", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.do("POST", "/rpc/Features/m/"+c.method, "application/json", c.args)
			want(t, r, c.status, c.code)
			if c.body != "" && !strings.Contains(r.String(), c.body) {
				t.Fatalf("answer %s does not contain %s", r, c.body)
			}
		})
	}
	want(t, n.call("Nosuch", "m", "count"), 404, "UNKNOWN_CLASS")
	want(t, n.do("GET", "/rpc/Features/m/count", "", ""), 405, "")
}

func TestCPULimitResetsObject(t *testing.T) {
	n := startJS(t, nodeOpts{cpuLimit: 300 * time.Millisecond})
	n.deploy("features", features(t))
	for want := 1; want <= 2; want++ {
		if r := n.call("Features", "c", "inc"); r.String() != strings.Repeat("", 0)+string(rune('0'+want)) {
			t.Fatalf("inc %d: %s", want, r)
		}
	}
	r := n.call("Features", "c", "spin", "lost")
	want(t, r, 504, "TIMEOUT")
	if r := n.call("Features", "c", "count"); r.String() != "0" {
		t.Fatalf("the interrupted event's write survived: count %s", r)
	}
	if r := n.call("Features", "c", "inc"); r.String() != "1" {
		t.Fatalf("the object was not reset: inc %s", r)
	}
}

func TestRedeployResetsObjects(t *testing.T) {
	n := startJS(t, nodeOpts{})
	src := features(t)
	n.deploy("features", src)
	n.call("Features", "r", "inc")
	n.call("Features", "r", "add", "row")
	if r := n.call("Features", "r", "inc"); r.String() != "2" {
		t.Fatalf("inc: %s", r)
	}
	n.deploy("features", src+"\n// v2\n")
	if r := n.call("Features", "r", "inc"); r.String() != "1" {
		t.Fatalf("memory survived a new version: inc %s", r)
	}
	if r := n.call("Features", "r", "count"); r.String() != "1" {
		t.Fatalf("storage lost in a new version: count %s", r)
	}
}

func TestAlarm(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("features", features(t))
	if r := n.call("Features", "al", "clearAlarm"); r.String() != "null" {
		t.Fatalf("clearAlarm: %s", r)
	}
	if r := n.call("Features", "al", "setAlarmIn", 60000); r.status != 200 || r.String() == "null" {
		t.Fatalf("setAlarmIn: %d %s", r.status, r)
	}
	if r := n.call("Features", "al", "clearAlarm"); r.String() != "null" {
		t.Fatalf("clearAlarm: %s", r)
	}
	want(t, n.call("Features", "al", "setAlarmIn", 0), 200, "")
	testutil.Poll(t, 10*time.Second, "the alarm to run", func() string {
		r := n.call("Features", "al", "alarmState")
		if r.String() != `{"alarm":null,"fired":1}` {
			return r.String()
		}
		return ""
	})
	info := n.do("GET", "/v1/objects/Features/al", "", "").json(t)
	if info["alarm_handler"] != true {
		t.Fatalf("alarm_handler: %v", info)
	}
}

func TestStubs(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("features", features(t))
	r := n.call("Features", "caller", "callOther", "callee")
	want(t, r, 200, "")
	got := decode(t, r)
	exp := roundTrip(map[string]any{"status": 201, "text": "ping", "q": "hi", "sum": 1,
		"counter": map[string]any{"key": "default", "value": 5}, "err": "EXCEPTION TypeError: bad thing"})
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("got  %v\nwant %v", got, exp)
	}
	// Objects waiting on each other across (and within) shared runtimes,
	// each with its own instance state.
	for round := 1; round <= 2; round++ {
		r := n.call("Features", "ch0", "chain", []string{"ch1", "ch2", "ch3", "ch4"})
		want := fmt.Sprintf(`["ch0:%d","ch1:%d","ch2:%d","ch3:%d","ch4:%d"]`, round, round, round, round, round)
		if r.String() != want {
			t.Fatalf("chain: %d %s, want %s", r.status, r, want)
		}
	}
	// A call back into an object waiting on it is refused, not a deadlock.
	want(t, n.call("Features", "loop", "callSelf"), 409, "CONSTRAINT")
	if r := n.call("Features", "who", "id"); !strings.Contains(r.String(), `"name":"who"`) || !strings.Contains(r.String(), `"hex":"`) {
		t.Fatalf("id: %s", r)
	}
}

// TestMathFunctionsThroughTheAPI: SQLite's math functions answer through
// /v1 SQL and through a JavaScript class's sql.exec.
func TestMathFunctionsThroughTheAPI(t *testing.T) {
	n := startJS(t, nodeOpts{})
	r := n.do("POST", "/v1/objects/db/m/sql", "application/json", `{"sql":"SELECT sqrt(16) AS a, pow(2, 10) AS b, log(2, 8) AS c, floor(-1.5) AS d, sqrt(-1) AS e"}`)
	if !strings.Contains(r.String(), `"rows":[[4,1024,3,-2,null]]`) {
		t.Fatalf("/v1 sql: %s", r)
	}
	n.deploy("math", `import { DurableObject } from "cloudflare:workers";
export class MathDO extends DurableObject { calc() { return this.ctx.storage.sql.exec("SELECT round(degrees(pi())) AS d, ln(1) AS z").one(); } }`)
	if r := n.call("MathDO", "x", "calc"); r.String() != `{"d":180,"z":0}` {
		t.Fatalf("calc: %s", r)
	}
}

// TestCloudflareDocsClasses deploys classes as Cloudflare's documentation
// writes them: a module with a default Worker export beside the
// classes, KV and SQL through ctx.storage, RPC methods with defaults.
func TestCloudflareDocsClasses(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("docs", `import { DurableObject } from "cloudflare:workers";

export interface Env { MY_DURABLE_OBJECT: DurableObjectNamespace<MyDurableObject>; }

export class MyDurableObject extends DurableObject<Env> {
  sql: SqlStorage;
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS artist(artistid INTEGER PRIMARY KEY, artistname TEXT)");
  }
  async sayHello(): Promise<string> {
    let result = this.ctx.storage.sql.exec("SELECT 'Hello, World!' as greeting").one() as { greeting: string };
    return result.greeting;
  }
}

export class KVCounter extends DurableObject {
  async getCounterValue() {
    let value = (await this.ctx.storage.get("value")) || 0;
    return value;
  }
  async increment(amount = 1) {
    let value: number = (await this.ctx.storage.get("value")) || 0;
    value += amount;
    await this.ctx.storage.put("value", value);
    return value;
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const stub = env.MY_DURABLE_OBJECT.getByName(new URL(request.url).pathname);
    return new Response(await stub.sayHello());
  },
} satisfies ExportedHandler<Env>;
`)
	steps := []struct{ class, method, args, want string }{
		{"MyDurableObject", "sayHello", `[]`, `"Hello, World!"`},
		{"KVCounter", "getCounterValue", `[]`, `0`},
		{"KVCounter", "increment", `[]`, `1`},
		{"KVCounter", "increment", `[5]`, `6`},
		{"KVCounter", "getCounterValue", `[]`, `6`},
	}
	for _, s := range steps {
		if r := n.do("POST", "/rpc/"+s.class+"/x/"+s.method, "application/json", s.args); r.String() != s.want {
			t.Fatalf("%s.%s(%s): %d %s, want %s", s.class, s.method, s.args, r.status, r, s.want)
		}
	}
	if r := n.do("GET", "/v1/objects/KVCounter/x/kv/value", "", ""); r.String() != `{"key":"value","value":6}` {
		t.Fatalf("the KV value through /v1: %s", r)
	}
}

// TestSharedRuntimesUnderLoad: many objects of one class, called at once,
// each waiting on another object, share the class's runtimes and keep
// their own state.
func TestSharedRuntimesUnderLoad(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("features", features(t))
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 10; i++ {
				r := n.call("Features", fmt.Sprint("p", w), "chain", []string{fmt.Sprint("q", w)})
				if want := fmt.Sprintf(`["p%d:%d","q%d:%d"]`, w, i, w, i); r.String() != want {
					errs <- fmt.Sprintf("%d %s, want %s", r.status, r, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestStorageStaysWithItsObject: objects of a runtime share module-level
// state, but an object's storage answers only in that object's turn.
func TestStorageStaysWithItsObject(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("leaky", `import { DurableObject } from "cloudflare:workers";
let leaked: any;
export class Leaky extends DurableObject {
  leak() { leaked = this.ctx; return "leaked"; }
  useLeaked() {
    if (!leaked) return "another runtime";
    try { leaked.storage.sql.exec("SELECT 1"); return "ran"; } catch (e: any) { return e.code; }
  }
}`)
	// Objects are bound round robin over one runtime per core (at least
	// two): a and b share one.
	n.call("Leaky", "a", "leak")
	for i := 1; i < max(2, runtime.GOMAXPROCS(0)); i++ {
		n.call("Leaky", fmt.Sprint("x", i), "useLeaked")
	}
	if r := n.call("Leaky", "b", "useLeaked"); r.String() != `"INTERNAL"` {
		t.Fatalf("another object's storage: %s", r)
	}
}

// TestBookmarks drives point-in-time recovery from a class the way
// Cloudflare's storage API reads: getCurrentBookmark, getBookmarkForTime
// and onNextSessionRestoreBookmark (here taking effect when the event
// commits).
func TestBookmarks(t *testing.T) {
	n := startJS(t, nodeOpts{})
	want(t, n.deploy("pitr", `
import { DurableObject } from "cloudflare:workers";
export class Notes extends DurableObject {
  write(v: string) {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS n (v TEXT)");
    this.ctx.storage.sql.exec("DELETE FROM n");
    this.ctx.storage.sql.exec("INSERT INTO n VALUES (?)", v);
  }
  read() { return this.ctx.storage.sql.exec("SELECT v FROM n").one().v; }
  async bookmark() { return await this.ctx.storage.getCurrentBookmark(); }
  async bookmarkAt(ms: number) { return await this.ctx.storage.getBookmarkForTime(new Date(ms)); }
  async restore(b: string) {
    const undo = await this.ctx.storage.onNextSessionRestoreBookmark(b);
    this.ctx.storage.sql.exec("INSERT INTO n VALUES ('discarded')");
    return undo;
  }
}`), 200, "")
	want(t, n.call("Notes", "x", "write", "one"), 200, "")
	one := n.call("Notes", "x", "bookmark").String()
	at := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	want(t, n.call("Notes", "x", "write", "two"), 200, "")
	two := n.call("Notes", "x", "bookmark").String()
	if !(one < two) {
		t.Fatalf("bookmarks %s then %s", one, two)
	}
	if got := n.call("Notes", "x", "bookmarkAt", at).String(); got != one {
		t.Fatalf("bookmark for a time between the writes: %s, want %s", got, one)
	}
	var b1 string
	json.Unmarshal([]byte(one), &b1)
	undo := n.call("Notes", "x", "restore", b1)
	want(t, undo, 200, "")
	if undo.String() != two {
		t.Fatalf("undo bookmark %s, want %s", undo, two)
	}
	if got := n.call("Notes", "x", "read").String(); got != `"one"` {
		t.Fatalf("after the restore: %s", got)
	}
	want(t, n.call("Notes", "x", "restore", "nonsense"), 400, "BAD_REQUEST")
}

// TestSyncLaterAppliesTheNewestList: lists handed to SyncLater (the Raft
// state's apply loop does, so a module's top level cannot hold it up)
// end with the newest installed, whatever order their goroutines run in.
func TestSyncLaterAppliesTheNewestList(t *testing.T) {
	n := startJS(t, nodeOpts{})
	src := func(class string) string {
		return `import { DurableObject } from "cloudflare:workers";
export class ` + class + ` extends DurableObject { hello() { return "` + class + `"; } }`
	}
	for v, class := range []string{"First", "Second", "Third"} {
		n.host.SyncLater([]jsrt.Record{{Name: "m", Version: v + 1, Source: src(class), Classes: []string{class}}})
	}
	testutil.Poll(t, 30*time.Second, "version 3 installed", func() string {
		list, _ := n.host.List(context.Background())
		if len(list) != 1 || list[0].Version != 3 {
			return fmt.Sprintf("modules %+v", list)
		}
		return ""
	})
	if r := n.call("Third", "x", "hello"); r.String() != `"Third"` {
		t.Fatalf("Third: %s", r)
	}
	want(t, n.call("First", "x", "hello"), 404, "UNKNOWN_CLASS")
	want(t, n.call("Second", "x", "hello"), 404, "UNKNOWN_CLASS")
}

// TestEnvBindings: env has a binding per registered class, Go or
// JavaScript, made when first read but seen as a plain object of them.
func TestEnvBindings(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("envprobe", `
import { DurableObject } from "cloudflare:workers";
export class EnvProbe extends DurableObject {
  probe() {
    const env = this.env;
    const keys = Object.keys(env);
    return {
      keys: keys.includes("counter") && keys.includes("EnvProbe"),
      has: "counter" in env && !("nope" in env),
      same: env.counter === env.counter,
      missing: env.nope === undefined,
      name: env.counter.idFromName("x").name,
      spread: Object.keys({ ...env }).length === keys.length,
      hidden: Object.getOwnPropertySymbols(env).length,
      own: Object.getOwnPropertyDescriptor(env, "EnvProbe") !== undefined,
      other: this.ctx.id.name,
    };
  }
  async ping(name) {
    return await this.env.EnvProbe.getByName(name).probe();
  }
}
`)
	want := `{"keys":true,"has":true,"same":true,"missing":true,"name":"x","spread":true,"hidden":0,"own":true,"other":"a"}`
	if r := n.call("EnvProbe", "a", "probe"); r.String() != want {
		t.Fatalf("probe: %d %s\nwant %s", r.status, r, want)
	}
	// Another object's env is its own: its stubs call as it.
	if r := n.call("EnvProbe", "b", "ping", "a"); r.String() != want {
		t.Fatalf("ping: %d %s\nwant %s", r.status, r, want)
	}
}

// TestHandlersThatAnswerAtOnce: handlers that are not async (a plain
// Response, a plain value, a synchronous throw) answer as async ones do,
// and their waitUntil work still ends with the event.
func TestHandlersThatAnswerAtOnce(t *testing.T) {
	n := startJS(t, nodeOpts{})
	n.deploy("plain", `
import { DurableObject } from "cloudflare:workers";
export class Plain extends DurableObject {
  fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new RangeError("sync " + url.searchParams.get("why"));
    if (url.pathname === "/notresponse") return "text";
    this.ctx.waitUntil(Promise.resolve().then(() => this.ctx.storage.sql.exec("INSERT INTO log VALUES (?)", url.pathname)));
    return new Response("plain " + url.pathname, { status: 202, headers: { "X-Sync": "yes" } });
  }
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS log (path TEXT)");
  }
  count() { return this.ctx.storage.sql.exec("SELECT count(*) AS n FROM log").one().n; }
  boom() { throw new TypeError("sync method"); }
  nothing() { }
  sql() { this.ctx.storage.sql.exec("INSERT INTO nope VALUES (1)"); }
}
`)
	r := n.do("GET", "/objects/Plain/p/a", "", "")
	want(t, r, 202, "")
	if r.String() != "plain /a" || r.header.Get("X-Sync") != "yes" {
		t.Fatalf("plain: %s %v", r, r.header)
	}
	if r := n.call("Plain", "p", "count"); r.String() != "1" {
		t.Fatalf("the waitUntil write: count %s", r)
	}
	r = n.do("GET", "/objects/Plain/p/throw?why=x", "", "")
	want(t, r, 500, "EXCEPTION")
	if r.message() != "RangeError: sync x" {
		t.Fatalf("sync throw: %s", r)
	}
	want(t, n.do("GET", "/objects/Plain/p/notresponse", "", ""), 500, "EXCEPTION")
	want(t, n.call("Plain", "p", "boom"), 500, "EXCEPTION")
	if r := n.call("Plain", "p", "nothing"); r.status != 200 || r.String() != "null" {
		t.Fatalf("nothing: %d %s", r.status, r)
	}
	// A storage error thrown at once keeps its code.
	want(t, n.call("Plain", "p", "sql"), 400, "SQL_ERROR")
}
