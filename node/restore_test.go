package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/rpc"
)

// testClock is a clock tests move by hand.
type testClock struct{ ms atomic.Int64 }

func (c *testClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *testClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func startAt(t *testing.T, dir string, clock *testClock) *Runtime {
	t.Helper()
	return newTestRuntime(t, dir, func(c *Config) { c.Now = clock.now }, nil)
}

// objectState reads what the restore must bring back: the row, a KV
// value and the alarm.
func objectState(t *testing.T, rt *Runtime, name string) (v int64, kv string, alarm int64) {
	t.Helper()
	ctx := context.Background()
	v = execSQL(t, rt, name, "SELECT v FROM t")[0][0].(int64)
	raw, err := rt.KVGet(ctx, "db", name, "k")
	if err != nil && !errors.Is(err, apierr.ErrNotFound) {
		t.Fatal(err)
	}
	a, err := rt.GetAlarm(ctx, "db", name)
	if err != nil {
		t.Fatal(err)
	}
	if a != nil {
		alarm = *a
	}
	return v, string(raw), alarm
}

func restore(t *testing.T, rt *Runtime, name string, req rpc.RestoreRequest) rpc.RestoreResponse {
	t.Helper()
	res, err := rt.Restore(context.Background(), "db", name, req)
	if err != nil {
		t.Fatalf("restore %+v: %v", req, err)
	}
	return res
}

func TestRestoreToATimeAndUndo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := &testClock{}
	clock.ms.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	rt := startAt(t, dir, clock)
	alarmAt := clock.now().Add(48 * time.Hour).UnixMilli()

	// Three states, a minute apart: v=1 with an alarm; v=2, a KV value,
	// no alarm; v=3 with 200 more rows.
	execSQL(t, rt, "o", "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)")
	if err := rt.SetAlarm(ctx, "db", "o", alarmAt); err != nil {
		t.Fatal(err)
	}
	t1 := clock.now().UnixMilli()
	clock.advance(time.Minute)
	execSQL(t, rt, "o", "UPDATE t SET v = 2")
	if err := rt.KVPut(ctx, "db", "o", "k", rpc.RawJSON(`"two"`)); err != nil {
		t.Fatal(err)
	}
	if err := rt.DeleteAlarm(ctx, "db", "o"); err != nil {
		t.Fatal(err)
	}
	t2 := clock.now().UnixMilli()
	clock.advance(time.Minute)
	execSQL(t, rt, "o", "UPDATE t SET v = 3; CREATE TABLE big (x); WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200) INSERT INTO big SELECT randomblob(100) FROM s")
	if err := rt.KVPut(ctx, "db", "o", "k", rpc.RawJSON(`"three"`)); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)

	latest, err := rt.Bookmark(ctx, "db", "o", 0)
	if err != nil {
		t.Fatal(err)
	}
	mid, err := rt.Bookmark(ctx, "db", "o", t2+30_000)
	if err != nil {
		t.Fatal(err)
	}
	if !(mid.Bookmark < latest.Bookmark) || mid.At > t2 || latest.At <= t2 {
		t.Fatalf("bookmarks: middle %+v, latest %+v", mid, latest)
	}

	res := restore(t, rt, "o", rpc.RestoreRequest{At: &t2})
	if res.RestoredTo != mid.Bookmark || res.UndoBookmark != latest.Bookmark {
		t.Fatalf("restore to %d answered %+v; want restored_to %s, undo %s", t2, res, mid.Bookmark, latest.Bookmark)
	}
	if v, kv, alarm := objectState(t, rt, "o"); v != 2 || kv != `"two"` || alarm != 0 {
		t.Fatalf("after restoring to the middle: v=%d kv=%s alarm=%d, want 2, \"two\", none", v, kv, alarm)
	}
	if n := execSQL(t, rt, "o", "SELECT count(*) FROM sqlite_master WHERE name = 'big'")[0][0].(int64); n != 0 {
		t.Fatal("a table created after the restore point survived it")
	}
	// History stays linear: the restore is the latest commit.
	if now, _ := rt.Bookmark(ctx, "db", "o", 0); !(latest.Bookmark < now.Bookmark) {
		t.Fatalf("bookmark after the restore %s does not follow %s", now.Bookmark, latest.Bookmark)
	}

	restore(t, rt, "o", rpc.RestoreRequest{Bookmark: res.UndoBookmark})
	if v, kv, alarm := objectState(t, rt, "o"); v != 3 || kv != `"three"` || alarm != 0 {
		t.Fatalf("after undoing the restore: v=%d kv=%s alarm=%d, want 3, \"three\", none", v, kv, alarm)
	}

	// The alarm comes back with the state that had it, across a restart.
	rt.Close(ctx)
	rt = startAt(t, dir, clock)
	restore(t, rt, "o", rpc.RestoreRequest{At: &t1})
	if v, kv, alarm := objectState(t, rt, "o"); v != 1 || kv != "" || alarm != alarmAt {
		t.Fatalf("after restoring to the start: v=%d kv=%q alarm=%d, want 1, none, %d", v, kv, alarm, alarmAt)
	}
	execSQL(t, rt, "o", "UPDATE t SET v = 4") // the object goes on from there
	if v, _, _ := objectState(t, rt, "o"); v != 4 {
		t.Fatalf("write after restore reads %d", v)
	}
	ref, _ := rt.ref("db", "o")
	entries, _ := os.ReadDir(filepath.Dir(rt.path(ref)))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("restores left %s behind", e.Name())
		}
	}
}

func TestBookmarkErrors(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{}
	clock.ms.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	rt := startAt(t, t.TempDir(), clock)
	execSQL(t, rt, "a", "CREATE TABLE t (v)")
	execSQL(t, rt, "b", "CREATE TABLE t (v)")
	first := clock.now().UnixMilli()
	clock.advance(time.Hour)
	other, err := rt.Bookmark(ctx, "db", "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	tooOld := clock.now().Add(-rt.cfg.PITRRetention - time.Minute).UnixMilli()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"before the object", func() error { _, err := rt.Bookmark(ctx, "db", "a", first-1000); return err }()},
		{"before the window", func() error { _, err := rt.Bookmark(ctx, "db", "a", tooOld); return err }()},
		{"no storage", func() error { _, err := rt.Bookmark(ctx, "db", "none", 0); return err }()},
		{"junk bookmark", func() error {
			_, err := rt.Restore(ctx, "db", "a", rpc.RestoreRequest{Bookmark: "junk"})
			return err
		}()},
		{"another object's bookmark", func() error {
			_, err := rt.Restore(ctx, "db", "a", rpc.RestoreRequest{Bookmark: other.Bookmark})
			return err
		}()},
		{"both bookmark and time", func() error {
			_, err := rt.Restore(ctx, "db", "a", rpc.RestoreRequest{Bookmark: other.Bookmark, At: &first})
			return err
		}()},
	} {
		want := apierr.ErrBadRequest
		if tc.name == "no storage" {
			want = apierr.ErrNotFound
		}
		if !errors.Is(tc.err, want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, want)
		}
	}
	// A refused restore changed nothing.
	if n := execSQL(t, rt, "a", "SELECT count(*) FROM t")[0][0].(int64); n != 0 {
		t.Fatalf("object a has %d rows", n)
	}
}

func TestObjectFromBeforeHistoryGetsABase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rt := newTestRuntime(t, dir, func(c *Config) { c.PITRRetention = 0 }, nil)
	execSQL(t, rt, "old", "CREATE TABLE t (v); INSERT INTO t VALUES ('before')")
	rt.Close(ctx)
	// History turned on: the object's past is not there, its present is.
	rt = newTestRuntime(t, dir, nil, nil)
	b, err := rt.Bookmark(ctx, "db", "old", 0)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, rt, "old", "UPDATE t SET v = 'after'")
	restore(t, rt, "old", rpc.RestoreRequest{Bookmark: b.Bookmark})
	if v := execSQL(t, rt, "old", "SELECT v FROM t")[0][0]; v != "before" {
		t.Fatalf("restored to %v", v)
	}
}

// TestSDKRestoreBookmark drives the Go SDK's bookmark calls from inside
// events: a restore takes effect when the event commits and discards
// what the event wrote.
func TestSDKRestoreBookmark(t *testing.T) {
	clock := &testClock{}
	clock.ms.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	ctors := 0
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) { c.Now = clock.now }, map[string]Constructor{
		"notes": func(st *State) (Object, error) {
			ctors++
			return &funcObject{fetch: func(w http.ResponseWriter, r *http.Request) error {
				s := st.Storage()
				q := r.URL.Query()
				switch r.URL.Path {
				case "/write":
					_, err := s.Exec("CREATE TABLE IF NOT EXISTS n (v); DELETE FROM n; INSERT INTO n VALUES (?)", q.Get("v"))
					return err
				case "/read":
					c, err := s.Exec("SELECT v FROM n")
					if err != nil {
						return err
					}
					rows := c.Raw()
					if len(rows) != 1 {
						return fmt.Errorf("%d rows", len(rows))
					}
					fmt.Fprint(w, rows[0][0])
				case "/bookmark":
					b, err := s.CurrentBookmark()
					if q.Get("at") != "" {
						ms, _ := strconv.ParseInt(q.Get("at"), 10, 64)
						b, err = s.BookmarkForTime(time.UnixMilli(ms))
					}
					if err != nil {
						return err
					}
					fmt.Fprint(w, b)
				case "/restore":
					undo, err := s.RestoreBookmark(q.Get("b"))
					if err != nil {
						return err
					}
					// Discarded by the restore.
					if _, err := s.Exec("INSERT INTO n VALUES ('lost')"); err != nil {
						return err
					}
					fmt.Fprint(w, undo)
				}
				return nil
			}}, nil
		},
	})
	get := func(path string) string {
		t.Helper()
		code, body, err := call(t, rt, "notes", "x", "POST", path, "")
		if err != nil || code != 200 {
			t.Fatalf("%s: %d %s %v", path, code, body, err)
		}
		return body
	}
	get("/write?v=one")
	one := get("/bookmark")
	t1 := clock.now().UnixMilli()
	clock.advance(time.Minute)
	get("/write?v=two")
	two := get("/bookmark")
	if at := get("/bookmark?at=" + strconv.FormatInt(t1+1000, 10)); at != one {
		t.Fatalf("bookmark for a time after the first write: %s, want %s", at, one)
	}
	before := ctors
	undo := get("/restore?b=" + one)
	if undo != two {
		t.Fatalf("undo bookmark %s, want %s", undo, two)
	}
	if v := get("/read"); v != "one" {
		t.Fatalf("after RestoreBookmark: %q, want one (and the event's own insert discarded)", v)
	}
	if ctors != before+1 {
		t.Fatalf("object constructed %d more times after the restore, want 1 (it restarts)", ctors-before)
	}
	get("/restore?b=" + undo)
	if v := get("/read"); v != "two" {
		t.Fatalf("after undo: %q", v)
	}
	if _, _, err := call(t, rt, "notes", "x", "POST", "/restore?b=bogus", ""); !errors.Is(err, apierr.ErrBadRequest) {
		t.Fatalf("bogus bookmark: %v", err)
	}
}
