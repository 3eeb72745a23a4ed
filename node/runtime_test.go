package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/rpc"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// newTestRuntime starts a runtime in a temp dir with cfg tweaks applied.
func newTestRuntime(t *testing.T, dir string, tweak func(*Config), classes map[string]Constructor) *Runtime {
	t.Helper()
	cfg := DefaultConfig(dir)
	cfg.NodeName = "test"
	if tweak != nil {
		tweak(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range classes {
		if err := rt.Register(name, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// call sends one request to an object and returns status and body.
func call(t *testing.T, rt *Runtime, class, name, method, path, body string) (int, string, error) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	err := rt.Call(context.Background(), class, name, rec, req)
	return rec.Code, rec.Body.String(), err
}

// funcObject adapts a function to Object (and Alarmer when alarm is set).
type funcObject struct {
	fetch func(w http.ResponseWriter, r *http.Request) error
	alarm func(ctx context.Context, info AlarmInfo) error
}

func (f *funcObject) Fetch(w http.ResponseWriter, r *http.Request) error { return f.fetch(w, r) }
func (f *funcObject) Alarm(ctx context.Context, info AlarmInfo) error {
	if f.alarm == nil {
		return nil
	}
	return f.alarm(ctx, info)
}

func TestOneEventAtATime(t *testing.T) {
	var active, maxActive atomic.Int32
	var count int // unguarded on purpose: the runtime must serialise events
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{
		"seq": func(st *State) (Object, error) {
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				n := active.Add(1)
				for {
					m := maxActive.Load()
					if n <= m || maxActive.CompareAndSwap(m, n) {
						break
					}
				}
				c := count
				time.Sleep(100 * time.Microsecond)
				count = c + 1
				active.Add(-1)
				return nil
			}}, nil
		},
	})
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := call(t, rt, "seq", "one", "POST", "/", ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if maxActive.Load() != 1 || count != 64 {
		t.Fatalf("max concurrent events %d, count %d", maxActive.Load(), count)
	}
}

func TestFailedEventRollsBackEverything(t *testing.T) {
	dir := t.TempDir()
	rt := newTestRuntime(t, dir, nil, map[string]Constructor{
		"acct": func(st *State) (Object, error) {
			if err := st.BlockConcurrencyWhile(func() error {
				_, err := st.Storage().Exec("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
				return err
			}); err != nil {
				return nil, err
			}
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				s := st.Storage()
				if _, err := s.Exec("INSERT INTO t VALUES (1)"); err != nil {
					return err
				}
				if err := s.Put("k", []byte(`"x"`)); err != nil {
					return err
				}
				if err := s.SetAlarm(time.Now().Add(time.Hour)); err != nil {
					return err
				}
				w.Write([]byte("written"))
				switch r.URL.Path {
				case "/fail":
					return fmt.Errorf("%w: nope", ErrConflict)
				case "/panic":
					panic("boom")
				}
				return nil
			}}, nil
		},
	})
	for _, path := range []string{"/fail", "/panic"} {
		code, body, err := call(t, rt, "acct", "a", "POST", path, "")
		if err == nil || code != 200 || body != "" {
			t.Fatalf("%s: code %d body %q err %v (the buffered response must be dropped)", path, code, body, err)
		}
	}
	res, err := rt.SQL(context.Background(), "acct", "a", stmts("SELECT count(*) FROM t"))
	if err != nil || res[0].Rows[0][0] != int64(0) {
		t.Fatalf("rows after failed events: %v %v", res, err)
	}
	if _, err := rt.KVGet(context.Background(), "acct", "a", "k"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("kv after failed events: %v", err)
	}
	if at, _ := rt.GetAlarm(context.Background(), "acct", "a"); at != nil {
		t.Fatalf("alarm after failed events: %v", *at)
	}
	if _, body, err := call(t, rt, "acct", "a", "POST", "/ok", ""); err != nil || body != "written" {
		t.Fatalf("ok event: %q %v", body, err)
	}
	if at, _ := rt.GetAlarm(context.Background(), "acct", "a"); at == nil {
		t.Fatal("alarm of a committed event missing")
	}
}

func TestConstructorFailureFailsActivation(t *testing.T) {
	fail := true
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{
		"flaky": func(st *State) (Object, error) {
			err := st.BlockConcurrencyWhile(func() error {
				if _, err := st.Storage().Exec("CREATE TABLE IF NOT EXISTS t (v)"); err != nil {
					return err
				}
				if fail {
					return errors.New("set-up failed")
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			return &funcObject{fetch: func(http.ResponseWriter, *http.Request) error { return nil }}, nil
		},
	})
	if _, _, err := call(t, rt, "flaky", "x", "GET", "/", ""); err == nil {
		t.Fatal("activation should fail")
	}
	fail = false
	if _, _, err := call(t, rt, "flaky", "x", "GET", "/", ""); err != nil {
		t.Fatal(err)
	}
	// The object whose first activation failed still enters the catalog.
	testutil.PollTrue(t, 5*time.Second, "x in the catalog", func() bool {
		list, err := rt.ListObjects(context.Background(), "flaky", "", 10)
		return err == nil && len(list.Objects) == 1 && list.Objects[0].Name == "x"
	})
}

func TestWaitUntilRunsAfterResponse(t *testing.T) {
	done := make(chan struct{})
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{
		"bg": func(st *State) (Object, error) {
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/read" {
					v, _, err := st.Storage().Get("bg")
					w.Write(v)
					return err
				}
				st.WaitUntil(func(ctx context.Context) error {
					defer close(done)
					return st.Storage().Put("bg", []byte("ran"))
				})
				w.Write([]byte("replied"))
				return nil
			}}, nil
		},
	})
	if _, body, err := call(t, rt, "bg", "o", "POST", "/", ""); err != nil || body != "replied" {
		t.Fatalf("%q %v", body, err)
	}
	<-done
	testutil.PollTrue(t, 5*time.Second, "the WaitUntil work ran", func() bool {
		_, body, _ := call(t, rt, "bg", "o", "GET", "/read", "")
		return body == "ran"
	})
}

func TestStubCallsAndCycles(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), nil, nil)
	var ping Constructor = func(st *State) (Object, error) {
		return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
			target := r.URL.Query().Get("to")
			if target == "" {
				fmt.Fprintf(w, "pong from %s", st.Name())
				return nil
			}
			next := r.URL.Query().Get("then")
			req, _ := http.NewRequestWithContext(r.Context(), "GET", "/?to="+next, nil)
			resp, err := st.Namespace("ping").Get(target).Fetch(req)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			w.Write(b)
			return nil
		}}, nil
	}
	rt.Register("ping", ping)
	if _, body, err := call(t, rt, "ping", "a", "GET", "/?to=b", ""); err != nil || body != "pong from b" {
		t.Fatalf("stub call: %q %v", body, err)
	}
	_, _, err := call(t, rt, "ping", "a", "GET", "/?to=b&then=a", "")
	if !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("cycle a->b->a: %v", err)
	}
}

// hitCounter answers "hits/rows": its requests since activation (kept in
// memory, lost on eviction) and the rows it has written (one per request).
func hitCounter(st *State) (Object, error) {
	hits := 0
	return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
		hits++
		if _, err := st.Storage().Exec("CREATE TABLE IF NOT EXISTS n (v); INSERT INTO n VALUES (1)"); err != nil {
			return err
		}
		c, err := st.Storage().Exec("SELECT count(*) FROM n")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d/%v", hits, c.Raw()[0][0])
		return nil
	}}, nil
}

func TestEvictionKeepsStorageAndCapsOpenFiles(t *testing.T) {
	const cap = 4
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) {
		c.MaxOpenFiles = cap * FilesPerObject
		c.IdleTimeout = 50 * time.Millisecond
	}, map[string]Constructor{
		"mem": hitCounter,
	})
	for i := 0; i < 20; i++ {
		if _, _, err := call(t, rt, "mem", fmt.Sprint("o", i), "POST", "/", ""); err != nil {
			t.Fatal(err)
		}
		rt.mu.Lock()
		open := rt.open - rt.parking
		rt.mu.Unlock()
		if open > cap {
			t.Fatalf("open databases %d over cap %d", open, cap)
		}
	}
	// o0 was evicted for idleness: memory is fresh, storage is not.
	testutil.PollTrue(t, 5*time.Second, "o0 evicted", func() bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		ref, err := rt.ref("mem", "o0")
		return err == nil && rt.objects[ref.id] == nil
	})
	if _, body, _ := call(t, rt, "mem", "o0", "POST", "/", ""); body != "1/2" {
		t.Fatalf("after eviction: %q", body)
	}
	testutil.PollTrue(t, 5*time.Second, "every object file closed", func() bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return rt.open == 0
	})
}

// TestOpenFilesCapParksLiveObjects: past the open-files cap the least
// recently used objects close their databases and stay live (in-memory
// state kept, reopened by their next event); past MaxObjects the least
// recently used are evicted.
func TestOpenFilesCapParksLiveObjects(t *testing.T) {
	const cap, live, objects = 4, 10, 20
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) {
		c.MaxOpenFiles = cap * FilesPerObject
		c.MaxObjects = live
		c.IdleTimeout = time.Hour
	}, map[string]Constructor{
		"mem": hitCounter,
	})
	// Open databases not being parked (the gauge's count), live objects.
	counts := func() (open, objects int) {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return rt.open - rt.parking, len(rt.objects)
	}
	for i := range objects {
		if _, body, err := call(t, rt, "mem", fmt.Sprint("o", i), "POST", "/", ""); err != nil || body != "1/1" {
			t.Fatalf("o%d: %q %v", i, body, err)
		}
		if open, n := counts(); open > cap || n > live {
			t.Fatalf("after o%d: %d open databases (cap %d), %d live objects (cap %d)", i, open, cap, n, live)
		}
	}
	// The parking is done by the closers; once done, exactly the cap's
	// worth of databases are open (a park that kept the file open, or an
	// unpark not counted, would show here).
	testutil.PollTrue(t, 5*time.Second, "parkings done", func() bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return rt.open == cap && rt.parking == 0 && rt.openLRU.Len() == cap && counterValue(rt.metrics.parks) >= objects-cap
	})
	if fds := testutil.OpenFilesUnder(t, filepath.Join(rt.cfg.DataDir, "partitions"), ".db"); fds > cap {
		t.Fatalf("%d object database files open, cap %d", fds, cap)
	}
	// o12 was parked (o16..o19 hold the open slots): its memory is kept
	// and its database reopened. o0 was evicted past MaxObjects: its
	// memory is fresh, its storage kept.
	for _, c := range []struct{ name, want string }{{"o12", "2/2"}, {"o19", "2/2"}, {"o12", "3/3"}, {"o0", "1/2"}} {
		if _, body, err := call(t, rt, "mem", c.name, "POST", "/", ""); err != nil || body != c.want {
			t.Fatalf("%s: %q %v, want %q", c.name, body, err, c.want)
		}
		if open, n := counts(); open > cap || n > live {
			t.Fatalf("after %s: %d open databases, %d live objects", c.name, open, n)
		}
	}
	if ev := counterValue(rt.metrics.evictions); ev < objects-live {
		t.Fatalf("%v evictions, want at least %d", ev, objects-live)
	}
}

func TestMigrateCommitsEachVersion(t *testing.T) {
	dir := t.TempDir()
	mig := func(failAt int) Constructor {
		return func(st *State) (Object, error) {
			err := st.BlockConcurrencyWhile(func() error {
				return st.Storage().Migrate(
					Migration{Version: 1, Up: func(s *Storage) error { _, err := s.Exec("CREATE TABLE a (v)"); return err }},
					Migration{Version: 2, Up: func(s *Storage) error {
						if failAt == 2 {
							return errors.New("v2 broken")
						}
						_, err := s.Exec("CREATE TABLE b (v)")
						return err
					}},
				)
			})
			if err != nil {
				return nil, err
			}
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				v, err := st.Storage().SchemaVersion()
				fmt.Fprint(w, v)
				return err
			}}, nil
		}
	}
	rt := newTestRuntime(t, dir, nil, map[string]Constructor{"m": mig(2)})
	if _, _, err := call(t, rt, "m", "x", "GET", "/", ""); err == nil {
		t.Fatal("broken v2 should fail activation")
	}
	res, err := rt.SQL(context.Background(), "db", "unused", stmts("SELECT 1"))
	if err != nil || len(res) != 1 {
		t.Fatal(err)
	}
	rt.Register("m", mig(0))
	if _, body, err := call(t, rt, "m", "x", "GET", "/", ""); err != nil || body != "2" {
		t.Fatalf("version after fixed migration: %q %v", body, err)
	}
}

func TestUnknownClassAndBadNames(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), nil, nil)
	if _, _, err := call(t, rt, "nope", "x", "GET", "/", ""); !errors.Is(err, apierr.ErrUnknownClass) {
		t.Fatalf("unknown class: %v", err)
	}
	for _, name := range []string{"", strings.Repeat("n", 1025), "a\x00b", "\xff"} {
		if _, err := rt.SQL(context.Background(), "db", name, stmts("SELECT 1")); !errors.Is(err, apierr.ErrBadRequest) {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

func TestCloseWaitsForWaitUntil(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	classes := map[string]Constructor{
		"bg": func(st *State) (Object, error) {
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/read" {
					v, _, err := st.Storage().Get("bg")
					w.Write(v)
					return err
				}
				st.WaitUntil(func(ctx context.Context) error {
					<-release
					return st.Storage().Put("bg", []byte("ran"))
				})
				return nil
			}}, nil
		},
	}
	rt := newTestRuntime(t, dir, nil, classes)
	if _, _, err := call(t, rt, "bg", "o", "POST", "/", ""); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- rt.Close(context.Background()) }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	rt2 := newTestRuntime(t, dir, nil, classes)
	if _, body, err := call(t, rt2, "bg", "o", "GET", "/read", ""); err != nil || body != "ran" {
		t.Fatalf("WaitUntil work lost at shutdown: %q %v", body, err)
	}
}

func TestWaitUntilSurvivesEvictionPressure(t *testing.T) {
	release := make(chan struct{})
	done := make(chan error, 1)
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) { c.MaxOpenFiles = FilesPerObject }, map[string]Constructor{
		"bg": func(st *State) (Object, error) {
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/later" {
					st.WaitUntil(func(ctx context.Context) error {
						<-release
						err := st.Storage().Put("k", []byte("v"))
						done <- err
						return err
					})
				}
				return nil
			}}, nil
		},
	})
	if _, _, err := call(t, rt, "bg", "a", "POST", "/later", ""); err != nil {
		t.Fatal(err)
	}
	// Other objects push "a" out of the one-object cache while its
	// WaitUntil work waits.
	for i := 0; i < 5; i++ {
		if _, _, err := call(t, rt, "bg", fmt.Sprint("other", i), "POST", "/", ""); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("WaitUntil lost its storage to eviction: %v", err)
	}
}

// TestListingShowsObjectsAnsweredBeforeIt: the catalog is written in
// batches, yet a listing begun after an object's first event answered
// holds it (a backup load and then a listing found one missing).
func TestListingShowsObjectsAnsweredBeforeIt(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), nil, nil)
	ctx := context.Background()
	for i := range 20 {
		name := fmt.Sprint("o", i)
		if _, err := rt.SQL(ctx, "db", name, stmts("CREATE TABLE t (v)")); err != nil {
			t.Fatal(err)
		}
		list, err := rt.ListObjects(ctx, "db", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Objects) != i+1 {
			t.Fatalf("after creating %s the listing holds %d objects, want %d", name, len(list.Objects), i+1)
		}
	}
}

func TestCatalogRebuiltFromFilesAfterLoss(t *testing.T) {
	dir := t.TempDir()
	rt := newTestRuntime(t, dir, nil, nil)
	ctx := context.Background()
	for _, name := range []string{"a", "b/c", "d"} {
		if _, err := rt.SQL(ctx, "db", name, stmts("CREATE TABLE t (v)")); err != nil {
			t.Fatal(err)
		}
	}
	rt.Close(ctx)
	// Lose the catalog entirely, as if the node died before writing it.
	if err := os.Remove(filepath.Join(dir, "node.db")); err != nil {
		t.Fatal(err)
	}
	rt2 := newTestRuntime(t, dir, nil, nil)
	list, err := rt2.ListObjects(ctx, "db", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range list.Objects {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "a,b/c,d" {
		t.Fatalf("rebuilt catalog lists %v", names)
	}
}

func TestKVBytesThatAreNotJSONReadAsBase64(t *testing.T) {
	rt := newTestRuntime(t, t.TempDir(), nil, map[string]Constructor{
		"raw": func(st *State) (Object, error) {
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				return st.Storage().Put("raw", []byte("hello"))
			}}, nil
		},
	})
	ctx := context.Background()
	if _, _, err := call(t, rt, "raw", "o", "POST", "/", ""); err != nil {
		t.Fatal(err)
	}
	v, err := rt.KVGet(ctx, "raw", "o", "raw")
	if err != nil || string(v) != `{"$base64":"aGVsbG8="}` {
		t.Fatalf("get: %s %v", v, err)
	}
	es, err := rt.KVList(ctx, "raw", "o", rpc.KVList{})
	if err != nil || len(es) != 1 || string(es[0].Value) != `{"$base64":"aGVsbG8="}` {
		t.Fatalf("list: %+v %v", es, err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
