package capsule

import (
	"bytes"
	"context"

	"github.com/tetratelabs/wazero/api"
)

// Batch feeds the messages queued behind the first one to a single
// astrid_hook_batch call (docs/abi.md, "Batched handler calls"), so a
// capsule under load pays the cost of entering the guest once per batch
// instead of once per message. The capsule actor implements it over its
// mailbox.
//
// Both methods run on the goroutine executing the guest (the actor's),
// inside the hook_next host function, while the guest waits for the answer.
type Batch interface {
	// Pending reports whether another message can be handled in this call:
	// one is queued, may run on this instance now, and its action and
	// payload together fit in room bytes (the exchange buffer). Pending must
	// not change anything.
	Pending(room int) bool
	// Advance completes the message in progress with res (its Data is the
	// caller's to keep) and starts the next queued one, returning its action
	// and payload. It is called only right after Pending returned true.
	Advance(res Result) (action string, payload []byte)
}

// HasBatch reports whether the instance can take several queued messages
// in one guest call (the module exports astrid_hook_batch).
func (in *Instance) HasBatch() bool { return in.batchHook != nil }

// InvokeBatch is Invoke through astrid_hook_batch: after handling action
// and payload the guest asks hook_next for more, and b hands it every
// message Pending allows, completing each one through Advance as the guest
// moves on. The Result returned is that of the last message started (the
// one whose outcome Advance has not seen); an error likewise concerns that
// message, and the messages Advance completed stay completed. Without the
// export (or with b nil) it is Invoke.
//
// The per-call deadline applies to each message: it restarts whenever the
// guest takes the next one.
func (in *Instance) InvokeBatch(action string, payload []byte, b Batch) (Result, error) {
	if in.batchHook == nil || b == nil {
		return in.Invoke(action, payload)
	}
	in.batch = b
	defer func() { in.batch = nil }()
	return in.trigger(in.batchHook, "astrid_hook_batch", action, payload)
}

// hostHookNext is hook_next(result_ptr, result_len) -> i64: called by the
// guest of an astrid_hook_batch call when it has the result of the message
// in progress. If another message is ready, the host takes the result,
// writes the next action and payload at the start of the exchange buffer
// and returns 1 << 62 | action_len << 32 | payload_len (> 0, whatever the
// lengths); the guest handles that message next. Otherwise it returns 0 and leaves the result with the
// guest, which returns it from astrid_hook_batch.
func hostHookNext(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	b := in.batch
	if b == nil || in.ctx.Err() != nil || in.expired.Load() {
		return 0 // not in a batch call, or this call is being stopped
	}
	if !b.Pending(int(in.bufCap)) {
		return 0
	}
	view, ok := read(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	res := DecodeResult(bytes.Clone(view))
	action, payload := b.Advance(res)
	mem := mod.Memory()
	if !mem.WriteString(in.bufPtr, action) || !mem.Write(in.bufPtr+uint32(len(action)), payload) {
		// The exchange buffer lies inside memory (checked when the host got
		// it) and memory never shrinks: this cannot happen. Fail closed.
		in.Close()
		return fail(in, errBadPointer)
	}
	in.arm()
	return 1<<62 | int64(len(action))<<32 | int64(len(payload))
}
