package jsrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/dop251/goja"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/node"
)

// shared is one goja runtime with a class version's program loaded,
// shared by objects of its classes as an isolate is on Cloudflare: they
// share module-level state, each has its own instance. One object at a
// time runs JavaScript in it (mu); an object waiting for a call to
// another object lets the others run.
type shared struct {
	mu   sync.Mutex
	vm   *vm
	cur  *object     // the object whose JavaScript runs now; guarded by mu
	dead atomic.Bool // interrupted at the CPU limit: objects move to a new runtime
}

// object is one live object of a JavaScript class: its instance in one
// of its class's shared runtimes. The node runs its events one at a
// time, so its fields are never used concurrently; the goja values are
// touched only while holding the runtime.
type object struct {
	h      *Host
	slot   *classSlot
	st     *node.State
	handle int64 // tells the natives which object a ctx belongs to

	prog *program // the version the instance was built from
	sh   *shared  // nil after a reset: rebuilt by the next event
	inst goja.Value
	// errs maps errors thrown into JavaScript by the natives back to the
	// Go errors they stand for, so an uncaught one keeps its code.
	errs map[*goja.Object]error
	// Calls to other objects in flight (native.async): started by the
	// event, finished through done, which the event waits for.
	pending int
	done    chan func()
}

// alarmObject is an object whose class has an alarm() handler.
type alarmObject struct{ *object }

// Alarm runs the class's alarm(alarmInfo) as the event.
func (a alarmObject) Alarm(ctx context.Context, info node.AlarmInfo) error {
	if err := a.ready(); err != nil {
		return err
	}
	return a.run("alarm", func(rt *goja.Runtime) []goja.Value {
		return []goja.Value{a.inst, rt.ToValue(info.RetryCount)}
	}, nil)
}

// constructor makes the node.Constructor of a class: it binds the object
// to a runtime and runs the class's constructor (and the
// blockConcurrencyWhile work it starts) in the activation event.
func (h *Host) constructor(slot *classSlot) node.Constructor {
	return func(st *node.State) (node.Object, error) {
		o := &object{h: h, slot: slot, st: st, handle: h.handles.Add(1), done: make(chan func())}
		if err := o.build(); err != nil {
			return nil, err
		}
		if o.prog.alarms[slot.name] {
			return alarmObject{o}, nil
		}
		return o, nil
	}
}

// build constructs the instance in a runtime of the class's current
// program.
func (o *object) build() error {
	o.sh, o.inst, o.prog = nil, nil, nil
	p := o.slot.code.Load()
	if p == nil {
		return fmt.Errorf("%w: %q", apierr.ErrUnknownClass, o.slot.name)
	}
	sh, err := p.bind(o.h.cfg.CPULimit)
	if err != nil {
		return err
	}
	o.sh, o.errs = sh, map[*goja.Object]error{}
	err = o.run("construct", func(rt *goja.Runtime) []goja.Value {
		return []goja.Value{sh.vm.exports, rt.ToValue(o.slot.name), rt.ToValue(o.slot.name), rt.ToValue(o.st.Name())}
	}, func(_ *goja.Runtime, v goja.Value) error {
		o.inst = v
		return nil
	})
	if err != nil {
		o.sh, o.inst = nil, nil
		return err
	}
	o.prog = p
	return nil
}

// ready makes sure the instance runs the class's current version: a new
// deploy (or a reset after a timeout) rebuilds it, in this event.
func (o *object) ready() error {
	p := o.slot.code.Load()
	if p == nil {
		return fmt.Errorf("%w: %q", apierr.ErrUnknownClass, o.slot.name)
	}
	if o.sh == nil || o.prog != p || o.sh.dead.Load() {
		return o.build()
	}
	clear(o.errs)
	return nil
}

// call runs work (a call to another object) in a goroutine; the event
// runs the function it returns (which settles a promise) in the runtime.
func (o *object) call(work func() func()) {
	o.pending++
	go func() { o.done <- work() }()
}

// run calls the prelude's entry name with the arguments args makes, under
// the CPU limit, until its promise settles and no call it started is in
// flight, then gives the value to read (nil: ignored). While a call is in
// flight the runtime is free for other objects. A script interrupted at
// the limit resets the object, and its runtime is replaced.
func (o *object) run(name string, args func(*goja.Runtime) []goja.Value, read func(*goja.Runtime, goja.Value) error) error {
	sh := o.sh
	sh.mu.Lock()
	sh.cur = o
	locked := true
	defer func() {
		if locked {
			sh.cur = nil
			sh.mu.Unlock()
		}
		for ; o.pending > 0; o.pending-- {
			<-o.done // calls of a failed event finish unheard
		}
	}()
	fn, _ := goja.AssertFunction(sh.vm.dura.Get(name))
	res, err := sh.vm.guard(func() (goja.Value, error) { return fn(goja.Undefined(), args(sh.vm.rt)...) })
	for err == nil {
		pending := isPending(res)
		if o.pending == 0 {
			if pending {
				err = fmt.Errorf("%w: Error: the event's promise never settled", apierr.ErrException)
			}
			break
		}
		sh.cur = nil
		sh.mu.Unlock()
		locked = false
		settle := <-o.done
		o.pending--
		sh.mu.Lock()
		sh.cur, locked = o, true
		noop, _ := goja.AssertFunction(sh.vm.dura.Get("noop"))
		// Calling any function runs the promise jobs the settling queued.
		_, err = sh.vm.guard(func() (goja.Value, error) { settle(); return noop(goja.Undefined()) })
	}
	if err != nil {
		if errors.Is(err, apierr.ErrTimeout) {
			sh.dead.Store(true)
			o.sh, o.inst, o.prog = nil, nil, nil
			o.st.Logger().Warn("JavaScript object reset", "err", err)
			return err
		}
		return o.jsError(err)
	}
	v, err := o.settled(res)
	if err != nil || read == nil {
		return err
	}
	return read(sh.vm.rt, v)
}

// isPending reports whether v is a promise not settled yet.
func isPending(v goja.Value) bool {
	obj, ok := v.(*goja.Object)
	if !ok {
		return false
	}
	p, ok := obj.Export().(*goja.Promise)
	return ok && p.State() == goja.PromiseStatePending
}

// settled is v's value once settled (v itself if not a promise).
func (o *object) settled(v goja.Value) (goja.Value, error) {
	obj, ok := v.(*goja.Object)
	if !ok {
		return v, nil
	}
	p, ok := obj.Export().(*goja.Promise)
	if !ok {
		return v, nil
	}
	switch p.State() {
	case goja.PromiseStateFulfilled:
		return p.Result(), nil
	case goja.PromiseStateRejected:
		return nil, o.thrown(p.Result())
	}
	return nil, fmt.Errorf("%w: Error: the event's promise never settled", apierr.ErrException)
}

// jsError is the Go error of a failed call into JavaScript.
func (o *object) jsError(err error) error {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return o.thrown(ex.Value())
	}
	if errors.Is(err, apierr.ErrTimeout) || errors.Is(err, apierr.ErrBadRequest) || errors.Is(err, apierr.ErrException) {
		return err
	}
	return fmt.Errorf("%w: %v", apierr.ErrException, err)
}

// thrown is the Go error of an uncaught JavaScript value: the storage
// error it stands for, else EXCEPTION with "<name>: <message>".
func (o *object) thrown(v goja.Value) error {
	if obj, ok := v.(*goja.Object); ok {
		if err, ok := o.errs[obj]; ok {
			return err
		}
	}
	return fmt.Errorf("%w: %s", apierr.ErrException, valueText(v))
}

// Fetch runs the class's fetch(request) as the event.
func (o *object) Fetch(w http.ResponseWriter, r *http.Request) error {
	if err := o.ready(); err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("%w: read the request: %v", apierr.ErrBadRequest, err)
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return o.run("fetch", func(rt *goja.Runtime) []goja.Value {
		// The headers go flat (name, value, ...): the prelude makes its
		// Headers from them only if the handler reads them.
		var headers []any
		for k, vs := range r.Header {
			for _, v := range vs {
				headers = append(headers, k, v)
			}
		}
		b := goja.Null()
		if len(body) > 0 {
			b = rt.ToValue(rt.NewArrayBuffer(body))
		}
		return []goja.Value{o.inst, rt.ToValue(r.Method), rt.ToValue("http://" + host + r.URL.RequestURI()), rt.NewArray(headers...), b}
	}, func(rt *goja.Runtime, v goja.Value) error {
		out := v.(*goja.Object)
		// The response's Headers map: lower-case names, combined values.
		hs, _ := out.Get("headers").Export().([][2]any)
		for _, kv := range hs {
			name, _ := kv[0].(string)
			value, _ := kv[1].(string)
			w.Header().Add(name, value)
		}
		w.WriteHeader(int(out.Get("status").ToInteger()))
		// The body: the string the handler gave, or its bytes.
		switch b := out.Get("body").Export().(type) {
		case string:
			_, err := io.WriteString(w, b)
			return err
		case goja.ArrayBuffer:
			_, err := w.Write(b.Bytes())
			return err
		}
		return nil
	})
}

// CallMethod runs a public method of the class as the event (RPC).
func (o *object) CallMethod(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	if err := o.ready(); err != nil {
		return nil, err
	}
	var out json.RawMessage
	err := o.run("call", func(rt *goja.Runtime) []goja.Value {
		return []goja.Value{o.inst, rt.ToValue(method), rt.ToValue(string(args))}
	}, func(_ *goja.Runtime, v goja.Value) error {
		out = json.RawMessage(v.String())
		return nil
	})
	return out, err
}
