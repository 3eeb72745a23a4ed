package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// sink is a JSON slog handler over a buffer whose lines the tests read
// back as maps.
type sink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func newSink(level slog.Level) (*sink, *slog.Logger) {
	s := &sink{}
	h := slog.NewJSONHandler(s, &slog.HandlerOptions{Level: level, ReplaceAttr: ReplaceAttr})
	return s, slog.New(h)
}

// lines decodes every line written so far and empties the buffer.
func (s *sink) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(s.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object: %q: %v", line, err)
		}
		out = append(out, m)
	}
	s.buf.Reset()
	return out
}

func TestHclogLevels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		log   func(hclog.Logger)
		level string // "" for none at the sink's Debug level
	}{
		{"trace", func(l hclog.Logger) { l.Trace("m") }, ""},
		{"debug", func(l hclog.Logger) { l.Debug("m") }, "DEBUG"},
		{"info", func(l hclog.Logger) { l.Info("m") }, "INFO"},
		{"warn", func(l hclog.Logger) { l.Warn("m") }, "WARN"},
		{"error", func(l hclog.Logger) { l.Error("m") }, "ERROR"},
		{"Log error", func(l hclog.Logger) { l.Log(hclog.Error, "m") }, "ERROR"},
		{"Log nolevel", func(l hclog.Logger) { l.Log(hclog.NoLevel, "m") }, "INFO"},
		{"Log off", func(l hclog.Logger) { l.Log(hclog.Off, "m") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sl := newSink(slog.LevelDebug)
			tc.log(NewHclog(sl, Options{Name: "raft"}))
			got := s.lines(t)
			if tc.level == "" {
				if len(got) != 0 {
					t.Fatalf("logged %v", got)
				}
				return
			}
			if len(got) != 1 || got[0]["level"] != tc.level || got[0]["msg"] != "m" || got[0]["component"] != "raft" {
				t.Fatalf("got %v, want one %s line", got, tc.level)
			}
		})
	}
}

func TestHclogFollowsHandlerLevel(t *testing.T) {
	for _, tc := range []struct {
		handler                        slog.Level
		trace, debug, info, warn, errs bool
		get                            hclog.Level
	}{
		{LevelTrace, true, true, true, true, true, hclog.Trace},
		{slog.LevelDebug, false, true, true, true, true, hclog.Debug},
		{slog.LevelInfo, false, false, true, true, true, hclog.Info},
		{slog.LevelWarn, false, false, false, true, true, hclog.Warn},
		{slog.LevelError, false, false, false, false, true, hclog.Error},
		{slog.LevelError + 4, false, false, false, false, false, hclog.Off},
	} {
		t.Run(tc.handler.String(), func(t *testing.T) {
			_, sl := newSink(tc.handler)
			l := NewHclog(sl, Options{})
			got := []bool{l.IsTrace(), l.IsDebug(), l.IsInfo(), l.IsWarn(), l.IsError()}
			want := []bool{tc.trace, tc.debug, tc.info, tc.warn, tc.errs}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("Is* = %v, want %v", got, want)
				}
			}
			if l.GetLevel() != tc.get {
				t.Fatalf("GetLevel = %v, want %v", l.GetLevel(), tc.get)
			}
		})
	}
}

func TestHclogSetLevelRaisesFloor(t *testing.T) {
	s, sl := newSink(slog.LevelDebug)
	l := NewHclog(sl, Options{})
	sub := l.Named("sub")
	l.SetLevel(hclog.Warn)
	if l.IsInfo() || sub.IsInfo() || !sub.IsWarn() || l.GetLevel() != hclog.Warn {
		t.Fatal("SetLevel(Warn) did not raise the floor of the logger and its sub-logger")
	}
	sub.Info("dropped")
	sub.Warn("kept")
	if got := s.lines(t); len(got) != 1 || got[0]["msg"] != "kept" {
		t.Fatalf("got %v", got)
	}
	l.SetLevel(hclog.NoLevel)
	if !l.IsDebug() {
		t.Fatal("SetLevel(NoLevel) did not give the level back to the handler")
	}
}

func TestHclogFieldsAsAttributes(t *testing.T) {
	s, sl := newSink(slog.LevelDebug)
	l := NewHclog(sl.With("node", "n1"), Options{Name: "raft"})
	l.Info("entering follower state", "follower", stringer("Follower"), "leader-address", "", "term", 3,
		"backoff time", 1500*time.Millisecond, "error", errors.New("boom"), "cmd", hclog.Fmt("%d-%s", 7, "x"), 42, "odd")
	got := s.lines(t)
	if len(got) != 1 {
		t.Fatalf("got %v", got)
	}
	m := got[0]
	want := map[string]any{"msg": "entering follower state", "node": "n1", "component": "raft", "follower": "Follower",
		"leader-address": "", "term": 3.0, "backoff time": "1.5s", "error": "boom", "cmd": "7-x", "42": "odd"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%q = %#v, want %#v (line %v)", k, m[k], v, m)
		}
	}
	l.Info("entering candidate state", "node", "Node at x [Candidate]", "component", "c")
	if got := s.lines(t); got[0]["node"] != "n1" || got[0]["raft.node"] != "Node at x [Candidate]" || got[0]["raft.component"] != "c" {
		t.Errorf("reserved keys not renamed: %v", got[0])
	}
	l.Info("odd", "only")
	if got := s.lines(t); got[0][hclog.MissingKey] != "only" {
		t.Errorf("a lone value is not under %s: %v", hclog.MissingKey, got[0])
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestHclogWithAndNamed(t *testing.T) {
	s, sl := newSink(slog.LevelDebug)
	l := NewHclog(sl, Options{Name: "raft"})
	w := l.With("peer", "n2", "term", 4)
	if got := w.ImpliedArgs(); len(got) != 4 || got[0] != "peer" {
		t.Fatalf("ImpliedArgs = %v", got)
	}
	n := w.Named("snapshot")
	if n.Name() != "raft.snapshot" || w.Name() != "raft" || l.ResetNamed("x").Name() != "x" {
		t.Fatalf("names %q %q", n.Name(), w.Name())
	}
	n.With("id", "s1").Info("m", "k", "v")
	l.Info("plain")
	got := s.lines(t)
	if len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	want := map[string]any{"component": "raft.snapshot", "peer": "n2", "term": 4.0, "id": "s1", "k": "v"}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%q = %#v, want %#v (line %v)", k, got[0][k], v, got[0])
		}
	}
	if _, ok := got[1]["peer"]; ok || got[1]["component"] != "raft" {
		t.Errorf("With changed its parent: %v", got[1])
	}
}

func TestHclogStandardWriter(t *testing.T) {
	s, sl := newSink(slog.LevelDebug)
	l := NewHclog(sl, Options{Name: "raft-net"})
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[WARN] something odd")
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("[DEBUG] forced")
	l.StandardLogger(nil).Print("plain")
	got := s.lines(t)
	want := [][2]string{{"WARN", "something odd"}, {"ERROR", "[DEBUG] forced"}, {"INFO", "plain"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i, w := range want {
		if got[i]["level"] != w[0] || got[i]["msg"] != w[1] || got[i]["component"] != "raft-net" {
			t.Errorf("line %d = %v, want %v", i, got[i], w)
		}
	}
}

func TestRepeatsRateLimited(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	s, sl := newSink(slog.LevelDebug)
	o := RaftOptions()
	o.Now = clock
	l := NewHclog(sl, o)
	fail := func(peer string) { l.Error("failed to heartbeat to", "peer", peer, "error", "dial refused") }

	levels := func() (out []string) {
		for _, m := range s.lines(t) {
			r, _ := m["repeats"].(float64)
			out = append(out, m["level"].(string)+":"+m["peer"].(string)+":"+strings.Repeat("+", int(r)))
		}
		return out
	}
	check := func(name string, want ...string) {
		t.Helper()
		if got := levels(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
	}

	fail("a")
	check("first", "WARN:a:")
	for range 3 {
		now = now.Add(600 * time.Millisecond)
		fail("a")
	}
	fail("b") // another peer has its own window
	check("repeats", "DEBUG:a:", "DEBUG:a:", "DEBUG:a:", "WARN:b:")
	now = now.Add(DefaultEvery)
	fail("a")
	check("next window", "WARN:a:+++")
	l.Error("failed to appendEntries to", "peer", "a") // another message has its own window
	l.Error("failed to get log", "index", 3)           // not rate-limited
	l.Error("failed to heartbeat to")                  // no peer: not rate-limited
	got := s.lines(t)
	if len(got) != 3 || got[0]["level"] != "WARN" || got[1]["level"] != "ERROR" || got[2]["level"] != "ERROR" {
		t.Fatalf("got %v", got)
	}

	// A message limited as a whole, and one whose level is overridden.
	l.Warn("Election timeout reached, restarting election")
	l.Warn("Election timeout reached, restarting election")
	l.Warn("heartbeat timeout reached, starting election", "last-leader-id", "")
	got = s.lines(t)
	if len(got) != 3 || got[0]["level"] != "WARN" || got[1]["level"] != "DEBUG" || got[2]["level"] != "INFO" {
		t.Fatalf("got %v", got)
	}

	// At --log-level info the repeats are not written at all.
	s, sl = newSink(slog.LevelInfo)
	l = NewHclog(sl, o)
	fail("a")
	fail("a")
	if got := s.lines(t); len(got) != 1 || got[0]["level"] != "WARN" {
		t.Fatalf("at info: got %v", got)
	}
}

func TestRepeatsForgetPeers(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRepeats(Options{Repeats: []Repeat{{"m", "peer"}}, Now: func() time.Time { return now }})
	for _, p := range []string{"a", "b", "c"} {
		r.level("m", []any{"peer", p})
	}
	now = now.Add(2 * DefaultEvery)
	r.level("m", []any{"peer", "d"})
	if len(r.lim.seen) != 1 {
		t.Fatalf("%d peers remembered, want 1", len(r.lim.seen))
	}
}

func TestMemberlistLevels(t *testing.T) {
	for _, tc := range []struct {
		line, level, msg string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5000", "DEBUG", "Stream connection from=127.0.0.1:5000"},
		{"[INFO] memberlist: Marking n2 as failed, suspect timeout reached (0 peer confirmations)", "INFO", "Marking n2 as failed, suspect timeout reached (0 peer confirmations)"},
		{"[WARN] memberlist: Refuting a suspect message (from: n2)", "WARN", "Refuting a suspect message (from: n2)"},
		{"[ERR] memberlist: Failed to send ping: write udp: i/o timeout", "ERROR", "Failed to send ping: write udp: i/o timeout"},
		{"[ERROR] memberlist: Failed fallback ping", "ERROR", "Failed fallback ping"},
		{"no prefix at all", "INFO", "no prefix at all"},
		{"[weird] memberlist: x", "INFO", "[weird] memberlist: x"},
	} {
		t.Run(tc.level+" "+tc.msg, func(t *testing.T) {
			s, sl := newSink(slog.LevelDebug)
			Memberlist(sl).Println(tc.line)
			got := s.lines(t)
			if len(got) != 1 || got[0]["level"] != tc.level || got[0]["msg"] != tc.msg || got[0]["component"] != "gossip" {
				t.Fatalf("got %v, want %s %q", got, tc.level, tc.msg)
			}
		})
	}
}

func TestMemberlistFollowsLevel(t *testing.T) {
	s, sl := newSink(slog.LevelWarn)
	ml := Memberlist(sl)
	ml.Printf("[DEBUG] memberlist: dropped")
	ml.Printf("[INFO] memberlist: dropped")
	ml.Printf("[ERR] memberlist: kept")
	if got := s.lines(t); len(got) != 1 || got[0]["msg"] != "kept" {
		t.Fatalf("got %v", got)
	}
	Memberlist(nil).Print("[ERR] memberlist: to nowhere")
}

func TestReplaceAttr(t *testing.T) {
	s, sl := newSink(LevelTrace)
	sl.Log(t.Context(), LevelTrace, "m", "timeout", 30*time.Second, slog.Group("g", "d", time.Millisecond))
	got := s.lines(t)
	g, _ := got[0]["g"].(map[string]any)
	if got[0]["timeout"] != "30s" || g["d"] != "1ms" || got[0]["level"] != "TRACE" {
		t.Fatalf("got %v", got[0])
	}
}
