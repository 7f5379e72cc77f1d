package capsule

import (
	"bytes"
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/astrid-go/astrid/hoststate"
)

// Batch feeds the messages queued behind the first one to a single
// astrid_hook_batch call (docs/abi.md, "Batched handler calls"), so a
// capsule under load pays the cost of entering the guest once per batch
// instead of once per message. The capsule actor implements it over its
// mailbox.
type Batch interface {
	// Next completes the message in progress with res (its Data is the
	// callee's to keep) and returns the next message to handle in the same
	// call, or ok=false to end the call. room is the size of the exchange
	// buffer: a longer message must stay queued (it gets a call of its
	// own). Next may wait for a message to arrive (the call's deadline is
	// suspended meanwhile) and must return once ctx is done.
	//
	// Next runs on the goroutine executing the guest (the actor's), inside
	// the hook_next host function, while the guest waits for the answer.
	Next(ctx context.Context, res Result, room int) (action string, payload []byte, ok bool)
}

// HasBatch reports whether the instance can take several queued messages
// in one guest call (the module exports astrid_hook_batch).
func (in *Instance) HasBatch() bool { return in.batchHook != nil }

// InvokeBatch is Invoke through astrid_hook_batch: after handling action
// and payload the guest hands its result to hook_next, and b completes the
// message and gives it the next one, for as long as b has messages. The
// Result returned is the call's own: it belongs to the message in progress
// when the call ended, if b had not completed it (the guest returns a result
// only when hook_next failed); an error likewise concerns the message in
// progress, if any, and the messages b completed stay completed. Without the
// export (or with b nil) it is Invoke.
//
// The per-call deadline applies to each message: it restarts whenever the
// guest takes the next one, and does not run while b waits for one.
func (in *Instance) InvokeBatch(action string, payload []byte, b Batch) (Result, error) {
	if in.batchHook == nil || b == nil {
		return in.Invoke(action, payload)
	}
	in.batch = b
	defer func() { in.batch = nil }()
	return in.trigger(in.batchHook, "astrid_hook_batch", action, payload)
}

// hostHookNext is hook_next(result_ptr, result_len) -> i64: called by the
// guest of an astrid_hook_batch call with the result of the message in
// progress. The host takes the result (the message is complete) and, if the
// batch has another message, writes its action and payload at the start of
// the exchange buffer and returns 1 << 62 | action_len << 32 | payload_len
// (> 0 whatever the lengths); the guest handles it next. 0 means the result
// was taken and the call is over: the guest returns (its result ignored).
// A negative value is an error code and the result was not taken.
func hostHookNext(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	b := in.batch
	if b == nil {
		return fail(in, errNotInBatch)
	}
	view, ok := read(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	res := DecodeResult(bytes.Clone(view))
	in.disarm()
	action, payload, ok := b.Next(in.ctx, res, int(in.bufCap))
	if !ok || in.ctx.Err() != nil {
		return 0
	}
	mem := mod.Memory()
	if !mem.WriteString(in.bufPtr, action) || !mem.Write(in.bufPtr+uint32(len(action)), payload) {
		// The exchange buffer lies inside memory (checked when the host got
		// it) and memory never shrinks: this cannot happen. Fail closed.
		in.Close()
		return 0
	}
	in.arm()
	return 1<<62 | int64(len(action))<<32 | int64(len(payload))
}

var errNotInBatch = &hoststate.Error{Code: hoststate.CodeInvalidInput, Detail: "hook_next outside astrid_hook_batch"}
