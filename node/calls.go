package node

import (
	"context"
	"strings"
)

// chainKey holds, in an event's context, the IDs of the objects waiting on
// the call it serves (outermost first), so a call back into one of them
// is refused instead of deadlocking.
type chainKey struct{}

// backgroundKey marks the context of WaitUntil work.
type backgroundKey struct{}

// chainOf lists the objects waiting on the current call, outermost first.
func chainOf(ctx context.Context) []string {
	chain, _ := ctx.Value(chainKey{}).([]string)
	return chain
}

// withChainHeader continues a call chain that came from another node
// (rpc.HeaderChain): IDs are 64 hex characters, comma-separated.
func withChainHeader(ctx context.Context, h string) context.Context {
	if h == "" {
		return ctx
	}
	var ids []string
	for _, id := range strings.Split(h, ",") {
		if len(id) == 64 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ctx
	}
	return context.WithValue(ctx, chainKey{}, append(chainOf(ctx), ids...))
}

// chainHas reports whether object id is already handling the call that
// carries ctx (A calls B calls A would wait on itself forever).
func chainHas(ctx context.Context, id string) bool {
	chain, _ := ctx.Value(chainKey{}).([]string)
	for _, c := range chain {
		if c == id {
			return true
		}
	}
	return false
}

func withChain(ctx context.Context, id string) context.Context {
	chain, _ := ctx.Value(chainKey{}).([]string)
	next := append(append([]string(nil), chain...), id)
	return context.WithValue(ctx, chainKey{}, next)
}
