package capsule

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/astrid-go/astrid/hoststate"
)

// The host functions of ABI v1. Each one finds its Instance (and through it
// the capsule's State) in the call context: every export call an Instance
// makes runs under a context carrying the Instance, so one host module per
// runtime serves every capsule of that memory class without sharing any
// per-capsule state.

type signature struct {
	params, results []api.ValueType
	fn              func(ctx context.Context, in *Instance, mod api.Module, stack []uint64) int64
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func types(t ...api.ValueType) []api.ValueType { return t }

func hostFunctionSignatures() map[string]signature {
	return map[string]signature{
		"ipc_publish":              {types(i32, i32, i32, i32), types(i64), hostPublish},
		"ipc_reply":                {types(i32, i32), types(i64), hostReply},
		"ipc_subscribe":            {types(i32, i32), types(i64), hostSubscribe},
		"ipc_unsubscribe":          {types(i64), types(i64), hostUnsubscribe},
		"ipc_poll":                 {types(i64, i32, i32), types(i64), hostPoll},
		"ipc_recv":                 {types(i64, i64, i32, i32), types(i64), hostRecv},
		"ipc_interceptor_bindings": {types(i32, i32), types(i64), hostBindings},
		"kv_get":                   {types(i32, i32, i32, i32), types(i64), hostKVGet},
		"kv_set":                   {types(i32, i32, i32, i32), types(i64), hostKVSet},
		"kv_delete":                {types(i32, i32), types(i64), hostKVDelete},
		"kv_list_keys":             {types(i32, i32, i32, i32), types(i64), hostKVList},
		"kv_cas":                   {types(i32, i32, i32, i32, i32, i32), types(i64), hostKVCAS},
		"kv_clear_prefix":          {types(i32, i32), types(i64), hostKVClear},
		"sys_log":                  {types(i32, i32, i32), types(i64), hostLog},
		"sys_get_config":           {types(i32, i32, i32, i32), types(i64), hostGetConfig},
		"sys_get_caller":           {types(i32, i32), types(i64), hostGetCaller},
		"sys_clock_ms":             {nil, types(i64), hostClockMs},
		"sys_sleep_ns":             {types(i64), types(i64), hostSleep},
		"sys_random_bytes":         {types(i32, i32), types(i64), hostRandom},
		"sys_signal_ready":         {nil, types(i64), hostSignalReady},
		"result_read":              {types(i32, i32), types(i64), hostResultRead},
		"sys_elicit":               {types(i32, i32, i32, i32), types(i64), hostElicit},
		"sys_has_secret":           {types(i32, i32), types(i64), hostHasSecret},
		"hook_next":                {types(i32, i32), types(i64), hostHookNext},
	}
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(ModuleName)
	for name, sig := range hostSignatures {
		fn := sig.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				in, _ := ctx.Value(instanceKey{}).(*Instance)
				if in == nil {
					// Called outside an Instance call (cannot happen for
					// modules instantiated by this package).
					stack[0] = api.EncodeI64(-int64(hoststate.CodeInternal))
					return
				}
				stack[0] = uint64(fn(ctx, in, mod, stack))
			}), sig.params, sig.results).
			Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// fail records err's detail in the result slot and returns -code.
func fail(in *Instance, err error) int64 {
	code := hoststate.CodeOf(err)
	var e *hoststate.Error
	if errors.As(err, &e) && e.Detail != "" {
		in.state.Slot = append(in.state.Slot[:0], e.Detail...)
	} else {
		in.state.Slot = append(in.state.Slot[:0], code.String()...)
	}
	return -int64(code)
}

var errBadPointer = &hoststate.Error{Code: hoststate.CodeInvalidInput, Detail: "pointer or length outside guest memory"}

// read returns a view of guest memory, valid until the guest runs again.
func read(mod api.Module, ptr, n uint64) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	return mod.Memory().Read(uint32(ptr), uint32(n))
}

func readString(mod api.Module, ptr, n uint64) (string, bool) {
	b, ok := read(mod, ptr, n)
	return string(b), ok
}

// outOK reports whether the out buffer (outPtr, outCap) lies inside guest
// memory. Functions that produce data check it before doing any work, so a
// bad out pointer gives invalid-input whatever the result would have been.
// Memory never shrinks, so the range stays valid for the whole host call.
func outOK(mod api.Module, outPtr, outCap uint64) bool {
	c := uint64(uint32(outCap))
	return c == 0 || uint64(uint32(outPtr))+c <= uint64(mod.Memory().Size())
}

// out writes data to (outPtr, outCap) if it fits, else parks it in the
// result slot; it returns the length either way (docs/abi.md).
func out(in *Instance, mod api.Module, outPtr, outCap uint64, data []byte) int64 {
	if uint64(len(data)) <= uint64(uint32(outCap)) {
		if len(data) > 0 && !mod.Memory().Write(uint32(outPtr), data) {
			return fail(in, errBadPointer)
		}
		return int64(len(data))
	}
	in.state.Slot = append(in.state.Slot[:0], data...)
	return int64(len(data))
}

func hostPublish(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	topic, ok1 := readString(mod, s[0], s[1])
	payload, ok2 := read(mod, s[2], s[3])
	if !ok1 || !ok2 {
		return fail(in, errBadPointer)
	}
	// The payload is a view of guest memory: State.Publish neither keeps
	// it nor lets the transport keep it (nats.go copies it into its write
	// buffer before Publish returns), so no copy is needed.
	if err := in.state.Publish(topic, payload); err != nil {
		return fail(in, err)
	}
	return 0
}

func hostReply(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	payload, ok := read(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	if err := in.state.Reply(payload); err != nil { // a view, as for publish
		return fail(in, err)
	}
	return 0
}

func hostSubscribe(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	pattern, ok := readString(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	h, err := in.state.Subscribe(pattern)
	if err != nil {
		return fail(in, err)
	}
	return int64(h)
}

func hostUnsubscribe(_ context.Context, in *Instance, _ api.Module, s []uint64) int64 {
	if err := in.state.Unsubscribe(s[0]); err != nil {
		return fail(in, err)
	}
	return 0
}

func hostPoll(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	if !outOK(mod, s[1], s[2]) {
		return fail(in, errBadPointer)
	}
	d, err := in.state.Poll(s[0])
	if err != nil {
		return fail(in, err)
	}
	if d == nil {
		return 0
	}
	return out(in, mod, s[1], s[2], hoststate.EnvelopeJSON(d))
}

func hostRecv(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	if !outOK(mod, s[2], s[3]) {
		return fail(in, errBadPointer)
	}
	// Clamp in milliseconds: multiplying a huge timeout_ms by a millisecond
	// would overflow time.Duration.
	ms := min(max(int64(s[1]), 0), hoststate.MaxRecvTimeout.Milliseconds())
	d, err := in.state.Recv(in.ctx, s[0], time.Duration(ms)*time.Millisecond)
	if err != nil {
		return fail(in, err)
	}
	return out(in, mod, s[2], s[3], hoststate.EnvelopeJSON(d))
}

func hostBindings(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	if !outOK(mod, s[0], s[1]) {
		return fail(in, errBadPointer)
	}
	b := in.state.Bindings()
	if b == nil {
		b = []hoststate.Binding{}
	}
	data, _ := json.Marshal(b)
	return out(in, mod, s[0], s[1], data)
}

func hostKVGet(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	key, ok := readString(mod, s[0], s[1])
	if !ok || !outOK(mod, s[2], s[3]) {
		return fail(in, errBadPointer)
	}
	v, err := in.state.KVGet(in.ctx, key)
	if err != nil {
		return fail(in, err)
	}
	return out(in, mod, s[2], s[3], v)
}

func hostKVSet(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	key, ok1 := readString(mod, s[0], s[1])
	val, ok2 := read(mod, s[2], s[3])
	if !ok1 || !ok2 {
		return fail(in, errBadPointer)
	}
	if err := in.state.KVSet(in.ctx, key, append([]byte(nil), val...)); err != nil {
		return fail(in, err)
	}
	return 0
}

func hostKVDelete(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	key, ok := readString(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	if err := in.state.KVDelete(in.ctx, key); err != nil {
		return fail(in, err)
	}
	return 0
}

func hostKVList(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	prefix, ok := readString(mod, s[0], s[1])
	if !ok || !outOK(mod, s[2], s[3]) {
		return fail(in, errBadPointer)
	}
	keys, err := in.state.KVListKeys(in.ctx, prefix)
	if err != nil {
		return fail(in, err)
	}
	if keys == nil {
		keys = []string{}
	}
	data, _ := json.Marshal(keys)
	return out(in, mod, s[2], s[3], data)
}

func hostKVCAS(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	key, ok := readString(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	absent := uint32(s[3]) == 0xFFFFFFFF
	var expected []byte
	if !absent {
		e, ok := read(mod, s[2], s[3])
		if !ok {
			return fail(in, errBadPointer)
		}
		expected = append([]byte(nil), e...)
	}
	val, ok := read(mod, s[4], s[5])
	if !ok {
		return fail(in, errBadPointer)
	}
	if err := in.state.KVCAS(in.ctx, key, expected, absent, append([]byte(nil), val...)); err != nil {
		return fail(in, err)
	}
	return 0
}

func hostKVClear(ctx context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	prefix, ok := readString(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	n, err := in.state.KVClearPrefix(in.ctx, prefix)
	if err != nil {
		return fail(in, err)
	}
	return int64(n)
}

func hostLog(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	// i32 arguments arrive in uint64 stack slots whose upper 32 bits are
	// not guaranteed to be zero: truncate before comparing.
	n := min(uint64(uint32(s[2])), hoststate.MaxLogMessageBytes)
	msg, ok := readString(mod, s[1], n)
	if !ok {
		return fail(in, errBadPointer)
	}
	in.state.Log(int32(uint32(s[0])), msg)
	return 0
}

func hostGetConfig(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	key, ok := readString(mod, s[0], s[1])
	if !ok || !outOK(mod, s[2], s[3]) {
		return fail(in, errBadPointer)
	}
	v, err := in.state.GetConfig(key)
	if err != nil {
		return fail(in, err)
	}
	return out(in, mod, s[2], s[3], []byte(v))
}

func hostGetCaller(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	if !outOK(mod, s[0], s[1]) {
		return fail(in, errBadPointer)
	}
	data, _ := json.Marshal(in.state.GetCaller())
	return out(in, mod, s[0], s[1], data)
}

func hostClockMs(_ context.Context, _ *Instance, _ api.Module, _ []uint64) int64 {
	return time.Now().UnixMilli()
}

func hostSleep(ctx context.Context, in *Instance, _ api.Module, s []uint64) int64 {
	if err := in.state.Sleep(in.ctx, time.Duration(int64(s[0]))); err != nil {
		return fail(in, err)
	}
	return 0
}

func hostRandom(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	b, err := in.state.RandomBytes(int(uint32(s[1])))
	if err != nil {
		return fail(in, err)
	}
	if len(b) > 0 && !mod.Memory().Write(uint32(s[0]), b) {
		return fail(in, errBadPointer)
	}
	return int64(len(b))
}

func hostSignalReady(_ context.Context, in *Instance, _ api.Module, _ []uint64) int64 {
	in.state.SignalReady()
	return 0
}

func hostResultRead(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	slot := in.state.Slot
	// Failures here leave the slot alone so the guest can retry.
	if uint64(len(slot)) > uint64(uint32(s[1])) {
		return -int64(hoststate.CodeTooLarge)
	}
	if len(slot) > 0 && !mod.Memory().Write(uint32(s[0]), slot) {
		return -int64(hoststate.CodeInvalidInput)
	}
	return int64(len(slot))
}

func hostElicit(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	req, ok := read(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	ans, err := in.state.Elicit(append([]byte(nil), req...))
	if err != nil {
		return fail(in, err)
	}
	return out(in, mod, s[2], s[3], ans)
}

func hostHasSecret(_ context.Context, in *Instance, mod api.Module, s []uint64) int64 {
	key, ok := readString(mod, s[0], s[1])
	if !ok {
		return fail(in, errBadPointer)
	}
	has, err := in.state.HasSecret(key)
	if err != nil {
		return fail(in, err)
	}
	if has {
		return 1
	}
	return 0
}
