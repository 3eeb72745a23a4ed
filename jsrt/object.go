package jsrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/dop251/goja"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/node"
)

// object is one live object of a JavaScript class: its own goja runtime
// with the class's shared program loaded and one instance constructed.
// The node runs its events one at a time, so it is never used
// concurrently.
type object struct {
	h    *Host
	slot *classSlot
	st   *node.State

	prog *program // the version the instance was built from
	vm   *vm      // nil after a reset: rebuilt by the next event
	inst goja.Value
	// errs maps errors thrown into JavaScript by the natives back to the
	// Go errors they stand for, so an uncaught one keeps its code.
	errs map[*goja.Object]error
}

// alarmObject is an object whose class has an alarm() handler.
type alarmObject struct{ *object }

// Alarm runs the class's alarm(alarmInfo) as the event.
func (a alarmObject) Alarm(ctx context.Context, info node.AlarmInfo) error {
	if err := a.ready(); err != nil {
		return err
	}
	_, err := a.invoke("alarm", a.inst, a.vm.rt.ToValue(info.RetryCount))
	return err
}

// constructor makes the node.Constructor of a class: it builds the
// object's runtime and runs the class's constructor (and the
// blockConcurrencyWhile work it starts) in the activation event.
func (h *Host) constructor(slot *classSlot) node.Constructor {
	return func(st *node.State) (node.Object, error) {
		o := &object{h: h, slot: slot, st: st}
		if err := o.build(); err != nil {
			return nil, err
		}
		has, _ := goja.AssertFunction(o.vm.dura.Get("hasAlarm"))
		if v, err := has(goja.Undefined(), o.inst); err == nil && v.ToBoolean() {
			return alarmObject{o}, nil
		}
		return o, nil
	}
}

// build runs the class's current program in a new runtime and
// constructs the instance.
func (o *object) build() error {
	o.vm, o.inst, o.prog = nil, nil, nil
	p := o.slot.code.Load()
	if p == nil {
		return fmt.Errorf("%w: %q", apierr.ErrUnknownClass, o.slot.name)
	}
	o.errs = map[*goja.Object]error{}
	v, err := newVM(o, p, o.h.cfg.CPULimit)
	if err != nil {
		return err
	}
	construct, _ := goja.AssertFunction(v.dura.Get("construct"))
	rt := v.rt
	res, err := v.guard(func() (goja.Value, error) {
		return construct(goja.Undefined(), v.exports, rt.ToValue(o.slot.name), rt.ToValue(o.slot.name), rt.ToValue(o.st.Name()))
	})
	if err != nil {
		return o.jsError(err)
	}
	inst := res.(*goja.Object)
	if _, err := o.settled(inst.Get("ready")); err != nil {
		return err
	}
	o.vm, o.inst, o.prog = v, inst, p
	return nil
}

// ready makes sure the instance runs the class's current version: a new
// deploy (or a reset after a timeout) rebuilds it, in this event.
func (o *object) ready() error {
	p := o.slot.code.Load()
	if p == nil {
		return fmt.Errorf("%w: %q", apierr.ErrUnknownClass, o.slot.name)
	}
	if o.vm == nil || o.prog != p {
		return o.build()
	}
	clear(o.errs)
	return nil
}

// invoke calls one of the prelude's event functions under the CPU limit
// and waits for its promise. A script interrupted at the limit resets
// the object: its next event starts from a new instance.
func (o *object) invoke(name string, args ...goja.Value) (goja.Value, error) {
	fn, _ := goja.AssertFunction(o.vm.dura.Get(name))
	res, err := o.vm.guard(func() (goja.Value, error) { return fn(goja.Undefined(), args...) })
	if err != nil {
		if errors.Is(err, apierr.ErrTimeout) {
			o.vm, o.inst, o.prog = nil, nil, nil
			o.st.Logger().Warn("JavaScript object reset", "err", err)
			return nil, err
		}
		return nil, o.jsError(err)
	}
	return o.settled(res)
}

// settled is v's value once settled: every promise job has run when a
// call returns (nothing outside the event can resolve one), so a
// pending promise would never settle.
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
	if errors.Is(err, apierr.ErrTimeout) || errors.Is(err, apierr.ErrBadRequest) {
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
	rt := o.vm.rt
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	var headers []any
	for k, vs := range r.Header {
		for _, v := range vs {
			headers = append(headers, rt.NewArray(k, v))
		}
	}
	res, err := o.invoke("fetch", o.inst, rt.ToValue(r.Method), rt.ToValue("http://"+host+r.URL.RequestURI()),
		rt.NewArray(headers...), rt.ToValue(rt.NewArrayBuffer(body)))
	if err != nil {
		return err
	}
	out := res.(*goja.Object)
	for _, h := range (&native{rt: rt}).array(out.Get("headers")) {
		kv := (&native{rt: rt}).array(h)
		w.Header().Add(kv[0].String(), kv[1].String())
	}
	w.WriteHeader(int(out.Get("status").ToInteger()))
	if b, ok := out.Get("body").Export().(goja.ArrayBuffer); ok {
		_, err = w.Write(b.Bytes())
	}
	return err
}

// CallMethod runs a public method of the class as the event (RPC).
func (o *object) CallMethod(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	if err := o.ready(); err != nil {
		return nil, err
	}
	rt := o.vm.rt
	res, err := o.invoke("call", o.inst, rt.ToValue(method), rt.ToValue(string(args)))
	if err != nil {
		return nil, err
	}
	return json.RawMessage(res.String()), nil
}
