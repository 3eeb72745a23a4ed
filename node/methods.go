package node

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dura-dev/dura/internal/apierr"
)

// MethodCaller is implemented by objects whose public methods can be
// called directly (RPC), such as JavaScript classes. args is a JSON array
// of arguments; the answer is the JSON of the method's result. A method
// the class does not expose answers NOT_FOUND.
type MethodCaller interface {
	CallMethod(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error)
}

// RemoteMethodCaller is an ObjectCaller that also reaches methods of
// objects on other nodes; rpc.Server implements it. It answers local=true
// when this node serves class/name.
type RemoteMethodCaller interface {
	CallMethodRemote(ctx context.Context, class, name, method string, args []byte, chain []string) (out []byte, local bool, err error)
}

// CallMethod runs one method of the object as an event: committed when
// it succeeds, rolled back when it fails. chainHeader continues a call
// chain from another node (rpc.HeaderChain), empty otherwise.
func (rt *Runtime) CallMethod(ctx context.Context, class, name, method string, args []byte, chainHeader string) ([]byte, error) {
	ref, err := rt.ref(class, name)
	if err != nil {
		return nil, err
	}
	ctx = withChainHeader(ctx, chainHeader)
	var out []byte
	err = rt.run(ctx, ref, func(inst *instance) error {
		mc, ok := inst.obj.(MethodCaller)
		if !ok {
			return fmt.Errorf("%w: class %q has no callable methods", apierr.ErrNotFound, class)
		}
		res, err := mc.CallMethod(inst.ev.ctx, method, args)
		out = res
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Unregister removes a class: its objects answer UNKNOWN_CLASS from
// their next event on. Their storage stays.
func (rt *Runtime) Unregister(class string) {
	rt.classMu.Lock()
	defer rt.classMu.Unlock()
	delete(rt.classes, class)
}

// CallMethod calls a method of the stub's object with args, a JSON array,
// and returns the JSON of its result: an event of the target, wherever it
// runs, with the same call-cycle rules as Fetch.
func (s *Stub) CallMethod(ctx context.Context, method string, args []byte) ([]byte, error) {
	if s.ns.from != nil && s.ns.from.inst.ev != nil {
		ctx = s.ns.from.inst.ev.ctx
	}
	if rc := s.ns.rt.caller.Load(); rc != nil {
		if mc, ok := (*rc).(RemoteMethodCaller); ok {
			out, local, err := mc.CallMethodRemote(ctx, s.ns.class, s.name, method, args, chainOf(ctx))
			if err != nil || !local {
				return out, err
			}
		}
	}
	return s.ns.rt.CallMethod(ctx, s.ns.class, s.name, method, args, "")
}
