package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/rpc"
)

// FuzzParseSQLRequest decodes any body as a /sql request. A refusal is
// BAD_REQUEST; an accepted body has statements with SQL text and
// SQL-typed parameters, and encoding them as the Go client does decodes
// to the same statements (BLOBs as {"$base64"}, numbers by value).
func FuzzParseSQLRequest(f *testing.F) {
	for _, h := range hostileRequests() {
		if h.path == sqlPath && len(h.body) <= 64<<10 {
			f.Add([]byte(h.body))
		}
	}
	for _, b := range []string{
		`{"sql":"SELECT 1"}`,
		`{"statements":[{"sql":"INSERT INTO t (v, b, f) VALUES (?, ?, ?)","params":["hello",{"$base64":"AAH/"},1.5]},{"sql":"SELECT ?","params":[null,true,-0,1e20,9223372036854775807,"\u00e9\ud800"]}]}`,
		`{"sql":"SELECT ?","params":[{"$base64":"AA==\n"}]}`,
		`{"statements":[],"sql":"SELECT 1"}`,
		`{"sql":"SELECT 1","sql":"SELECT 2"}`,
		`{"statements":[{"sql":""}]}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		stmts, err := rpc.ParseSQLRequest(body)
		if err != nil {
			if code, _ := apierr.Code(err); code != "BAD_REQUEST" {
				t.Fatalf("refusal %v is %s, not BAD_REQUEST", err, code)
			}
			return
		}
		if len(stmts) == 0 {
			t.Fatal("accepted a request without statements")
		}
		encoded := rpc.SQLRequest{Statements: make([]rpc.Statement, len(stmts))}
		for i, s := range stmts {
			if s.SQL == "" || !utf8.ValidString(s.SQL) {
				t.Fatalf("statement %d: SQL %q", i, s.SQL)
			}
			ps := make([]any, len(s.Params))
			for j, p := range s.Params {
				switch v := p.(type) {
				case nil, int64, float64, []byte:
				case string:
					if !utf8.ValidString(v) {
						t.Fatalf("statement %d parameter %d: invalid UTF-8 %q", i, j, v)
					}
				default:
					t.Fatalf("statement %d parameter %d: %T is no SQL value", i, j, p)
				}
				ps[j] = rpc.EncodeValue(p)
			}
			encoded.Statements[i] = rpc.Statement{SQL: s.SQL, Params: ps}
		}
		again, err := json.Marshal(encoded)
		if err != nil {
			t.Fatal(err)
		}
		round, err := rpc.ParseSQLRequest(again)
		if err != nil {
			t.Fatalf("re-encoded request %s refused: %v", again, err)
		}
		if len(round) != len(stmts) {
			t.Fatalf("%d statements came back as %d", len(stmts), len(round))
		}
		for i := range stmts {
			if round[i].SQL != stmts[i].SQL || len(round[i].Params) != len(stmts[i].Params) {
				t.Fatalf("statement %d: %+v came back as %+v", i, stmts[i], round[i])
			}
			for j := range stmts[i].Params {
				if !sameSQLValue(stmts[i].Params[j], round[i].Params[j]) {
					t.Fatalf("statement %d parameter %d: %#v came back as %#v", i, j, stmts[i].Params[j], round[i].Params[j])
				}
			}
		}
	})
}

// sameSQLValue compares SQL values as SQLite would store them: BLOBs and
// text by content, numbers by value (JSON writes 1.0 as 1).
func sameSQLValue(a, b any) bool {
	num := func(v any) (float64, bool) {
		switch x := v.(type) {
		case int64:
			return float64(x), true
		case float64:
			return x, true
		}
		return 0, false
	}
	if x, ok := num(a); ok {
		y, ok := num(b)
		return ok && x == y
	}
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case string:
		y, ok := b.(string)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// FuzzBlobParam checks the BLOB mapping: any bytes survive EncodeValue,
// JSON and DecodeParam; any {"$base64": s} either decodes (and then its
// bytes round-trip) or is refused with BAD_REQUEST.
func FuzzBlobParam(f *testing.F) {
	f.Add([]byte{0, 1, 0xff}, "AAH/")
	f.Add([]byte{}, "")
	f.Add([]byte("text"), "AA==\n")
	f.Add([]byte(nil), "!!")
	f.Add([]byte{0xfe}, "AAH")
	decode := func(t *testing.T, v any) (any, error) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var back any
		if err := dec.Decode(&back); err != nil {
			t.Fatal(err)
		}
		return rpc.DecodeParam(back)
	}
	f.Fuzz(func(t *testing.T, data []byte, s string) {
		got, err := decode(t, rpc.EncodeValue(data))
		if b, ok := got.([]byte); err != nil || !ok || !bytes.Equal(b, data) {
			t.Fatalf("%x came back as %#v, %v", data, got, err)
		}
		got, err = decode(t, map[string]any{"$base64": s})
		if err != nil {
			if code, _ := apierr.Code(err); code != "BAD_REQUEST" {
				t.Fatalf("refusal %v is %s", err, code)
			}
			return
		}
		b, ok := got.([]byte)
		if !ok {
			t.Fatalf("{$base64: %q} decoded to %T", s, got)
		}
		if again, err := decode(t, rpc.EncodeValue(b)); err != nil || !bytes.Equal(again.([]byte), b) {
			t.Fatalf("%x did not round-trip: %#v %v", b, again, err)
		}
	})
}

// routeRecorder is a Backend that records which object (and key) each
// request reached and answers with nothing.
type routeRecorder struct {
	class, name, key string
	reached          bool
}

func (r *routeRecorder) note(class, name, key string) {
	r.class, r.name, r.key, r.reached = class, name, key, true
}

func (r *routeRecorder) NodeName() string         { return "fuzz" }
func (r *routeRecorder) KnownClass(c string) bool { return c == "db" }
func (r *routeRecorder) Call(_ context.Context, class, name string, w http.ResponseWriter, req *http.Request) error {
	r.note(class, name, req.URL.Path)
	return nil
}
func (r *routeRecorder) SQL(_ context.Context, class, name string, _ []rpc.Statement) ([]rpc.SQLResult, error) {
	r.note(class, name, "")
	return nil, nil
}
func (r *routeRecorder) KVGet(_ context.Context, class, name, key string) (rpc.RawJSON, error) {
	r.note(class, name, key)
	return rpc.RawJSON("1"), nil
}
func (r *routeRecorder) KVPut(_ context.Context, class, name, key string, _ rpc.RawJSON) error {
	r.note(class, name, key)
	return nil
}
func (r *routeRecorder) KVDelete(_ context.Context, class, name, key string) (bool, error) {
	r.note(class, name, key)
	return true, nil
}
func (r *routeRecorder) KVList(_ context.Context, class, name string, _ rpc.KVList) ([]rpc.KVEntry, error) {
	r.note(class, name, "")
	return nil, nil
}
func (r *routeRecorder) GetAlarm(_ context.Context, class, name string) (*int64, error) {
	r.note(class, name, "")
	return nil, nil
}
func (r *routeRecorder) SetAlarm(_ context.Context, class, name string, _ int64) error {
	r.note(class, name, "")
	return nil
}
func (r *routeRecorder) DeleteAlarm(_ context.Context, class, name string) error {
	r.note(class, name, "")
	return nil
}
func (r *routeRecorder) Info(_ context.Context, class, name string) (rpc.ObjectInfo, error) {
	r.note(class, name, "")
	return rpc.ObjectInfo{}, nil
}
func (r *routeRecorder) Advice(_ context.Context, class, name string) (rpc.AdviceResponse, error) {
	r.note(class, name, "")
	return rpc.AdviceResponse{}, nil
}
func (r *routeRecorder) Explain(_ context.Context, class, name string, _ rpc.Statement) (rpc.ExplainResponse, error) {
	r.note(class, name, "")
	return rpc.ExplainResponse{}, nil
}
func (r *routeRecorder) Bookmark(_ context.Context, class, name string, _ int64) (rpc.BookmarkResponse, error) {
	r.note(class, name, "")
	return rpc.BookmarkResponse{}, nil
}
func (r *routeRecorder) Restore(_ context.Context, class, name string, _ rpc.RestoreRequest) (rpc.RestoreResponse, error) {
	r.note(class, name, "")
	return rpc.RestoreResponse{}, nil
}
func (r *routeRecorder) DeleteObject(_ context.Context, class, name string) error {
	r.note(class, name, "")
	return nil
}
func (r *routeRecorder) Export(_ context.Context, class, name string, _ io.Writer) error {
	r.note(class, name, "")
	return nil
}
func (r *routeRecorder) Import(_ context.Context, class, name string, _ io.Reader) error {
	r.note(class, name, "")
	return nil
}
func (r *routeRecorder) ListObjects(context.Context, string, string, int) (rpc.ObjectList, error) {
	return rpc.ObjectList{}, nil
}
func (r *routeRecorder) Cluster(context.Context) (rpc.ClusterInfo, error) {
	return rpc.ClusterInfo{}, nil
}
func (r *routeRecorder) Ready(context.Context) error { return nil }

// objectOps are the object routes as the Go client builds them.
var objectOps = []struct {
	method, suffix string
	key            bool
}{
	{"POST", "/sql", false}, {"GET", "", false}, {"DELETE", "", false}, {"GET", "/alarm", false},
	{"GET", "/kv", false}, {"GET", "/kv/", true}, {"PUT", "/kv/", true}, {"DELETE", "/kv/", true},
	{"GET", "/advice", false}, {"POST", "/explain", false},
}

// FuzzObjectRoute sends every object route, built the way the Go client
// builds it, for any class, name and key. The request reaches exactly
// that object and key, or is refused with BAD_REQUEST (only a class or
// name of exactly "/", which the router cannot match); it is never
// redirected and never reaches another object.
func FuzzObjectRoute(f *testing.F) {
	for i, s := range pathTricks {
		f.Add("db", s, pathTricks[(i+1)%len(pathTricks)], uint8(i))
	}
	f.Add("db", "/", "/", uint8(0))
	f.Add("", "", "", uint8(5))
	f.Add("a/b", "x", "..", uint8(6))
	f.Add("db", "x\x00", "\xff", uint8(7))
	rec := &routeRecorder{}
	h := rpc.NewServer(rpc.ServerConfig{Backend: rec}).Handler()
	f.Fuzz(func(t *testing.T, class, name, key string, op uint8) {
		o := objectOps[int(op)%len(objectOps)]
		path := "/v1/objects" + rpc.ObjectPath(class, name) + o.suffix
		if o.key {
			path += rpc.EscapeSegment(key)
		}
		*rec = routeRecorder{}
		status, code := serve(t, h, o.method, path)
		slash := class == "/" || name == "/"
		switch {
		case status == http.StatusOK:
			wantKey := ""
			if o.key {
				wantKey = key
			}
			if !rec.reached || rec.class != class || rec.name != name || rec.key != wantKey {
				t.Fatalf("%s %s reached (%q, %q, %q), want (%q, %q, %q)", o.method, path, rec.class, rec.name, rec.key, class, name, wantKey)
			}
		case code == "BAD_REQUEST" && (slash || class == "" || name == ""):
		default:
			t.Fatalf("%s %s answered %d %s", o.method, path, status, code)
		}
		if status != http.StatusOK && rec.reached {
			t.Fatalf("%s %s reached the backend and answered %d", o.method, path, status)
		}
	})
}

// FuzzRawObjectPath sends any request path. The answer is never a
// redirect to another path than the same one with a trailing slash, never
// INTERNAL, and a request that reaches an object reaches the one its path
// names (its class and name segments, unescaped).
func FuzzRawObjectPath(f *testing.F) {
	for _, h := range hostileRequests() {
		if len(h.path) < 4096 {
			f.Add(h.method, h.path)
		}
	}
	f.Add("GET", "/v1/objects/db/%2E%2E/kv/%2E")
	f.Add("PUT", "/v1/objects/db/x/kv")
	f.Add("GET", "/objects/db/x%2Fy/a/../b")
	f.Add("DELETE", "/v1/objects/db/%2f")
	rec := &routeRecorder{}
	h := rpc.NewServer(rpc.ServerConfig{Backend: rec}).Handler()
	f.Fuzz(func(t *testing.T, method, path string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || u.Host != "" || u.Scheme != "" || !validMethod(method) {
			return
		}
		*rec = routeRecorder{}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.URL, req.RequestURI = method, u, path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 300 && w.Code < 400 {
			// ServeMux adds a missing trailing slash (re-escaping the path).
			loc, err := url.Parse(w.Header().Get("Location"))
			if err != nil || loc.Path != u.Path+"/" {
				t.Fatalf("%s %s redirected to %q", method, path, w.Header().Get("Location"))
			}
			return
		}
		if w.Code >= 400 {
			var e rpc.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Code == "INTERNAL" {
				t.Fatalf("%s %s answered %d %q", method, path, w.Code, w.Body.String())
			}
		}
		if !rec.reached {
			return
		}
		segs := strings.Split(u.EscapedPath(), "/")
		i := 2 // "", "objects", class, name
		if len(segs) > 1 && segs[1] == "v1" {
			i = 3
		}
		if len(segs) < i+2 {
			t.Fatalf("%s %s reached (%q, %q) with too few segments", method, path, rec.class, rec.name)
		}
		class, err1 := url.PathUnescape(segs[i])
		name, err2 := url.PathUnescape(segs[i+1])
		if err1 != nil || err2 != nil || rec.class != class || rec.name != name {
			t.Fatalf("%s %s reached (%q, %q), its path names (%q, %q)", method, path, rec.class, rec.name, class, name)
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS":
		return true
	}
	return false
}

// serve sends a bodiless request to h and returns its status and error code.
func serve(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://node"+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if method == "POST" {
		req.Body = io.NopCloser(strings.NewReader(`{"sql":"SELECT 1"}`))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code == http.StatusOK {
		return w.Code, ""
	}
	var e rpc.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		return w.Code, ""
	}
	return w.Code, e.Error.Code
}
