package jsrt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/placement"
)

// native holds the Go functions the prelude builds the globals on, for
// one runtime. They act for the object whose JavaScript runs now
// (shared.cur); there is none while a module loads, and storage and
// stubs are then not available.
type native struct {
	rt *goja.Runtime
	sh *shared
}

// cur is the object whose JavaScript runs now, nil while a module loads.
func (n *native) cur() *object {
	if n.sh == nil {
		return nil
	}
	return n.sh.cur
}

// natives is the prelude's __native object.
func natives(rt *goja.Runtime, sh *shared) *goja.Object {
	n := &native{rt: rt, sh: sh}
	obj := rt.NewObject()
	for name, f := range map[string]func(goja.FunctionCall) goja.Value{
		"exec": n.exec, "databaseSize": n.databaseSize,
		"kvGet": n.kvGet, "kvPut": n.kvPut, "kvDelete": n.kvDelete, "kvList": n.kvList, "deleteAll": n.deleteAll,
		"setAlarm": n.setAlarm, "getAlarm": n.getAlarm, "deleteAlarm": n.deleteAlarm,
		"currentBookmark": n.currentBookmark, "bookmarkForTime": n.bookmarkForTime, "restoreBookmark": n.restoreBookmark,
		"stubFetch": n.stubFetch, "stubCall": n.stubCall, "idFromName": n.idFromName, "classes": n.classes,
		"noMethod": n.noMethod, "handle": n.handle, "log": n.log, "parseURL": n.parseURL, "parseQuery": n.parseQuery,
		"encode": n.encode, "decode": n.decode, "atob": n.atob, "btoa": n.btoa,
		"randomUUID": n.randomUUID, "randomFill": n.randomFill,
	} {
		obj.Set(name, f)
	}
	return obj
}

// throw raises err in JavaScript as an Error whose code is the API code
// (CONSTRAINT, SQL_ERROR, ...); if uncaught, the event fails with err
// itself, so its code reaches the client as from Go.
func (n *native) throw(err error) {
	panic(n.errorValue(err))
}

// errorValue is err as a JavaScript Error whose code is the API code,
// remembered by the current object so that, uncaught, its event fails
// with err itself.
func (n *native) errorValue(err error) *goja.Object {
	code, _ := apierr.Code(err)
	e, cerr := n.rt.New(n.rt.Get("Error"), n.rt.ToValue(apierr.Message(err)))
	if cerr != nil {
		return n.rt.NewGoError(err)
	}
	e.Set("code", code)
	if o := n.cur(); o != nil {
		o.errs[e] = err
	}
	return e
}

func (n *native) typeError(format string, args ...any) {
	panic(n.rt.NewTypeError(fmt.Sprintf(format, args...)))
}

// storage is the storage of the object whose handle h is (the first
// argument of every storage native), in that object's turn only.
func (n *native) storage(h goja.Value) *node.Storage {
	return n.owner(h).st.Storage()
}

// owner is the object whose handle h is: the one whose turn it is, or
// the call is refused (a module loading, or JavaScript of another object
// reaching this one's ctx, see DESIGN.md).
func (n *native) owner(h goja.Value) *object {
	o := n.cur()
	if o == nil {
		n.throw(fmt.Errorf("%w: storage and objects are not available while a module loads", apierr.ErrBadRequest))
	}
	if h.ToInteger() != o.handle {
		n.throw(fmt.Errorf("%w: storage of one object used while another object's JavaScript runs", apierr.ErrInternal))
	}
	return o
}

func (n *native) handle(goja.FunctionCall) goja.Value {
	if o := n.cur(); o != nil {
		return n.rt.ToValue(o.handle)
	}
	return n.rt.ToValue(0)
}

// array reads a JavaScript array.
func (n *native) array(v goja.Value) []goja.Value {
	obj, ok := v.(*goja.Object)
	if !ok {
		return nil
	}
	l := int(obj.Get("length").ToInteger())
	out := make([]goja.Value, l)
	for i := range l {
		out[i] = obj.Get(strconv.Itoa(i))
	}
	return out
}

func (n *native) strings(v goja.Value) []string {
	vs := n.array(v)
	out := make([]string, len(vs))
	for i, x := range vs {
		out[i] = x.String()
	}
	return out
}

// toSQL is a binding's Go value: numbers, strings, null, bytes.
func (n *native) toSQL(v goja.Value) any {
	if v == nil || goja.IsNull(v) || goja.IsUndefined(v) {
		return nil
	}
	switch x := v.Export().(type) {
	case int64, float64, string:
		return x
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case goja.ArrayBuffer:
		return bytes.Clone(x.Bytes())
	case *big.Int:
		return x.Int64()
	}
	n.typeError("unsupported SQL binding of type %s", v.ExportType())
	return nil
}

// fromSQL is a SQL value in JavaScript: integers and reals as numbers,
// BLOBs as ArrayBuffer.
func (n *native) fromSQL(v any) goja.Value {
	switch x := v.(type) {
	case nil:
		return goja.Null()
	case []byte:
		return n.rt.ToValue(n.rt.NewArrayBuffer(bytes.Clone(x)))
	case time.Time:
		return n.rt.ToValue(x.Format("2006-01-02 15:04:05"))
	case bool:
		if x {
			return n.rt.ToValue(1)
		}
		return n.rt.ToValue(0)
	}
	return n.rt.ToValue(v)
}

func (n *native) exec(c goja.FunctionCall) goja.Value {
	st := n.storage(c.Argument(0))
	binds := n.array(c.Argument(2))
	args := make([]any, len(binds))
	for i, b := range binds {
		args[i] = n.toSQL(b)
	}
	cur, err := st.Exec(c.Argument(1).String(), args...)
	if err != nil {
		n.throw(err)
	}
	rows := cur.Raw()
	jsRows := make([]any, len(rows))
	for i, row := range rows {
		vals := make([]any, len(row))
		for j, v := range row {
			vals[j] = n.fromSQL(v)
		}
		jsRows[i] = n.rt.NewArray(vals...)
	}
	cols := make([]any, len(cur.ColumnNames()))
	for i, c := range cur.ColumnNames() {
		cols[i] = c
	}
	// [columns, rows, rowsRead, rowsWritten, changes]: an array costs the
	// runtime less than an object's properties (SqlStorageCursor reads it).
	return n.rt.NewArray(n.rt.NewArray(cols...), n.rt.NewArray(jsRows...), cur.RowsRead(), cur.RowsWritten(), cur.Changes())
}

func (n *native) databaseSize(c goja.FunctionCall) goja.Value {
	size, err := n.storage(c.Argument(0)).DatabaseSize()
	if err != nil {
		n.throw(err)
	}
	return n.rt.ToValue(size)
}

// kvValue is a stored value for the prelude: JSON text as a string (the
// prelude parses it), other bytes (stored by a Go class) as ArrayBuffer.
func (n *native) kvValue(b []byte) goja.Value {
	if json.Valid(b) {
		return n.rt.ToValue(string(b))
	}
	return n.rt.ToValue(n.rt.NewArrayBuffer(bytes.Clone(b)))
}

func (n *native) kvGet(c goja.FunctionCall) goja.Value {
	st := n.storage(c.Argument(0))
	keys := n.strings(c.Argument(1))
	got, err := st.GetMany(keys)
	if err != nil {
		n.throw(err)
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		if v, ok := got[k]; ok {
			out[i] = n.kvValue(v)
		} else {
			out[i] = goja.Null()
		}
	}
	return n.rt.NewArray(out...)
}

func (n *native) kvPut(c goja.FunctionCall) goja.Value {
	st := n.storage(c.Argument(0))
	var entries []objectstore.Entry
	for _, e := range n.array(c.Argument(1)) {
		kv := n.array(e)
		entries = append(entries, objectstore.Entry{Key: kv[0].String(), Value: []byte(kv[1].String())})
	}
	if err := st.PutMany(entries); err != nil {
		n.throw(err)
	}
	return goja.Undefined()
}

func (n *native) kvDelete(c goja.FunctionCall) goja.Value {
	count, err := n.storage(c.Argument(0)).DeleteMany(n.strings(c.Argument(1)))
	if err != nil {
		n.throw(err)
	}
	return n.rt.ToValue(count)
}

func (n *native) kvList(c goja.FunctionCall) goja.Value {
	st := n.storage(c.Argument(0))
	var o objectstore.ListOptions
	if opts, ok := c.Argument(1).(*goja.Object); ok {
		str := func(k string) string {
			if v := opts.Get(k); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
				return v.String()
			}
			return ""
		}
		o.Start, o.StartAfter, o.End, o.Prefix = str("start"), str("startAfter"), str("end"), str("prefix")
		if v := opts.Get("reverse"); v != nil {
			o.Reverse = v.ToBoolean()
		}
		if v := opts.Get("limit"); v != nil && !goja.IsUndefined(v) {
			o.Limit = int(v.ToInteger())
		}
	}
	es, err := st.List(o)
	if err != nil {
		n.throw(err)
	}
	out := make([]any, len(es))
	for i, e := range es {
		out[i] = n.rt.NewArray(e.Key, n.kvValue(e.Value))
	}
	return n.rt.NewArray(out...)
}

func (n *native) deleteAll(c goja.FunctionCall) goja.Value {
	if err := n.storage(c.Argument(0)).DeleteAll(); err != nil {
		n.throw(err)
	}
	return goja.Undefined()
}

func (n *native) setAlarm(c goja.FunctionCall) goja.Value {
	st := n.storage(c.Argument(0))
	f := c.Argument(1).ToFloat()
	if f != f {
		n.typeError("setAlarm takes a Date or unix milliseconds")
	}
	if err := st.SetAlarm(time.UnixMilli(int64(f))); err != nil {
		n.throw(err)
	}
	return goja.Undefined()
}

func (n *native) getAlarm(c goja.FunctionCall) goja.Value {
	t, ok, err := n.storage(c.Argument(0)).GetAlarm()
	if err != nil {
		n.throw(err)
	}
	if !ok {
		return goja.Null()
	}
	return n.rt.ToValue(t.UnixMilli())
}

func (n *native) deleteAlarm(c goja.FunctionCall) goja.Value {
	if err := n.storage(c.Argument(0)).DeleteAlarm(); err != nil {
		n.throw(err)
	}
	return goja.Undefined()
}

func (n *native) currentBookmark(c goja.FunctionCall) goja.Value {
	b, err := n.storage(c.Argument(0)).CurrentBookmark()
	if err != nil {
		n.throw(err)
	}
	return n.rt.ToValue(b)
}

func (n *native) bookmarkForTime(c goja.FunctionCall) goja.Value {
	f := c.Argument(1).ToFloat()
	if f != f {
		n.typeError("getBookmarkForTime takes a Date or unix milliseconds")
	}
	b, err := n.storage(c.Argument(0)).BookmarkForTime(time.UnixMilli(int64(f)))
	if err != nil {
		n.throw(err)
	}
	return n.rt.ToValue(b)
}

func (n *native) restoreBookmark(c goja.FunctionCall) goja.Value {
	undo, err := n.storage(c.Argument(0)).RestoreBookmark(c.Argument(1).String())
	if err != nil {
		n.throw(err)
	}
	return n.rt.ToValue(undo)
}

// stub is the stub of another object, for calls from the event of the
// object whose handle h is.
func (n *native) stub(h goja.Value, class, name string) *node.Stub {
	return n.owner(h).st.Namespace(class).Get(name)
}

// stubFetch(h, class, name, method, url, headers, body) sends a request to
// another object's fetch and returns a promise of {status, headers,
// body}. The call runs outside the runtime (see object.call), so other
// objects sharing it go on meanwhile.
func (n *native) stubFetch(c goja.FunctionCall) goja.Value {
	stub := n.stub(c.Argument(0), c.Argument(1).String(), c.Argument(2).String())
	u, err := url.Parse(c.Argument(4).String())
	if err != nil {
		n.typeError("invalid URL: %v", err)
	}
	var body io.Reader = http.NoBody
	if b, ok := c.Argument(6).Export().(goja.ArrayBuffer); ok {
		body = bytes.NewReader(bytes.Clone(b.Bytes()))
	}
	req, err := http.NewRequestWithContext(context.Background(), c.Argument(3).String(), "http://"+u.Host+u.RequestURI(), body)
	if err != nil {
		n.typeError("invalid request: %v", err)
	}
	for _, h := range n.array(c.Argument(5)) {
		kv := n.array(h)
		req.Header.Add(kv[0].String(), kv[1].String())
	}
	return n.async(func() (func() goja.Value, error) {
		resp, err := stub.Fetch(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: read the answer: %v", apierr.ErrInternal, err)
		}
		return func() goja.Value {
			var headers []any
			for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
				for _, v := range resp.Header[k] {
					headers = append(headers, n.rt.NewArray(strings.ToLower(k), v))
				}
			}
			out := n.rt.NewObject()
			out.Set("status", resp.StatusCode)
			out.Set("headers", n.rt.NewArray(headers...))
			out.Set("body", n.rt.NewArrayBuffer(data))
			return out
		}, nil
	})
}

// stubCall(h, class, name, method, argsJSON) calls a method of another
// object and returns a promise of the JSON of its result.
func (n *native) stubCall(c goja.FunctionCall) goja.Value {
	stub := n.stub(c.Argument(0), c.Argument(1).String(), c.Argument(2).String())
	method, args := c.Argument(3).String(), []byte(c.Argument(4).String())
	return n.async(func() (func() goja.Value, error) {
		out, err := stub.CallMethod(context.Background(), method, args)
		if err != nil {
			return nil, err
		}
		return func() goja.Value { return n.rt.ToValue(string(out)) }, nil
	})
}

// async runs work outside the runtime for the current object's event and
// returns a promise of its result: work runs in a goroutine; value makes
// the JavaScript value back in the runtime.
func (n *native) async(work func() (value func() goja.Value, err error)) goja.Value {
	o := n.cur()
	p, resolve, reject := n.rt.NewPromise()
	o.call(func() func() {
		value, err := work()
		return func() {
			if err != nil {
				reject(n.errorValue(err))
				return
			}
			resolve(value())
		}
	})
	return n.rt.ToValue(p)
}

func (n *native) idFromName(c goja.FunctionCall) goja.Value {
	return n.rt.ToValue(placement.ObjectID(c.Argument(0).String(), c.Argument(1).String()))
}

// classes lists every registered class, for env's bindings.
func (n *native) classes(goja.FunctionCall) goja.Value {
	o := n.cur()
	if o == nil {
		return n.rt.NewArray()
	}
	cs := o.h.cfg.Runtime.Classes()
	slices.Sort(cs)
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return n.rt.NewArray(out...)
}

func (n *native) noMethod(c goja.FunctionCall) goja.Value {
	n.throw(fmt.Errorf("%w: no callable method %q", apierr.ErrNotFound, c.Argument(0).String()))
	return nil
}

func (n *native) log(c goja.FunctionCall) goja.Value {
	o := n.cur()
	if o == nil {
		return goja.Undefined()
	}
	l := o.st.Logger()
	msg := c.Argument(1).String()
	switch c.Argument(0).String() {
	case "debug":
		l.Debug(msg, "source", "console")
	case "warn":
		l.Warn(msg, "source", "console")
	case "error":
		l.Error(msg, "source", "console")
	default:
		l.Info(msg, "source", "console")
	}
	return goja.Undefined()
}

func (n *native) parseURL(c goja.FunctionCall) goja.Value {
	u, err := url.Parse(c.Argument(0).String())
	if base := c.Argument(1).String(); err == nil && base != "" {
		b, berr := url.Parse(base)
		if berr != nil || b.Scheme == "" {
			n.typeError("Invalid base URL: %s", base)
		}
		u = b.ResolveReference(u)
	}
	if err != nil || u.Scheme == "" {
		n.typeError("Invalid URL: %s", c.Argument(0).String())
	}
	path := u.EscapedPath()
	if path == "" && u.Host != "" {
		path = "/"
	}
	pw, _ := u.User.Password()
	search, hash := "", ""
	if u.RawQuery != "" {
		search = "?" + u.RawQuery
	}
	if u.Fragment != "" {
		hash = "#" + u.EscapedFragment()
	}
	// In the order the prelude's URL reads them; an array costs the
	// runtime less than an object's eight properties.
	out := n.rt.NewArray(u.Scheme+":", u.User.Username(), pw, u.Hostname(), u.Port(), path, search, hash)
	return out
}

// parseQuery is URLSearchParams' list of a query string: [name, value]
// pairs, "+" a space, percent escapes decoded where well formed and kept
// as they are where not, and bytes that are not UTF-8 replaced (the
// WHATWG URL standard's form parsing; decodeURIComponent would throw).
func (n *native) parseQuery(c goja.FunctionCall) goja.Value {
	s := strings.TrimPrefix(c.Argument(0).String(), "?")
	var pairs []any
	for part := range strings.SplitSeq(s, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		pairs = append(pairs, n.rt.NewArray(formDecode(k), formDecode(v)))
	}
	return n.rt.NewArray(pairs...)
}

// formDecode decodes one name or value of a form-encoded query.
func formDecode(s string) string {
	if !strings.ContainsAny(s, "+%") && utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '+' {
			b = append(b, ' ')
			continue
		}
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func (n *native) encode(c goja.FunctionCall) goja.Value {
	return n.rt.ToValue(n.rt.NewArrayBuffer([]byte(c.Argument(0).String())))
}

func (n *native) decode(c goja.FunctionCall) goja.Value {
	b, _ := c.Argument(0).Export().(goja.ArrayBuffer)
	s := string(b.Bytes())
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return n.rt.ToValue(s)
}

func (n *native) btoa(c goja.FunctionCall) goja.Value {
	s := c.Argument(0).String()
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			panic(n.rt.NewTypeError("btoa: the string has characters outside Latin-1"))
		}
		b = append(b, byte(r))
	}
	return n.rt.ToValue(base64.StdEncoding.EncodeToString(b))
}

func (n *native) atob(c goja.FunctionCall) goja.Value {
	s := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r' {
			return -1
		}
		return r
	}, c.Argument(0).String())
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		panic(n.rt.NewTypeError("atob: the string is not valid base64"))
	}
	r := make([]rune, len(b))
	for i, x := range b {
		r[i] = rune(x)
	}
	return n.rt.ToValue(string(r))
}

func (n *native) randomUUID(goja.FunctionCall) goja.Value {
	return n.rt.ToValue(uuid4())
}

func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (n *native) randomFill(c goja.FunctionCall) goja.Value {
	b, _ := c.Argument(0).Export().(goja.ArrayBuffer)
	off, l := int(c.Argument(1).ToInteger()), int(c.Argument(2).ToInteger())
	if l > 65536 {
		panic(n.rt.NewTypeError("getRandomValues: at most 65536 bytes"))
	}
	buf := b.Bytes()
	if off < 0 || off+l > len(buf) {
		panic(n.rt.NewTypeError("getRandomValues: bad view"))
	}
	rand.Read(buf[off : off+l])
	return goja.Undefined()
}
