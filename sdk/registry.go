package sdk

import (
	"encoding/json"
	"runtime"

	"github.com/astrid-go/astrid/sdk/internal/loop"
)

// yieldEvery is how many hook triggers or received messages pass between two
// runtime.Gosched calls. A Go reactor whose exports allocate but never yield
// stalls its GC (perf-baseline pitfall 9: the heap grew by ~100 MiB per 100k
// calls, flat with a yield every 1,000). A yield costs ~1 µs, so once every
// 64 messages is cheap insurance even for handlers that allocate a lot.
const yieldEvery = 64

// Call is one message handed to a handler. It is valid only during the
// handler call; do not keep it or its payload afterwards.
type Call struct {
	action  string
	payload []byte
}

// Action returns the action name the message was dispatched on (the
// manifest's handler value).
func (c *Call) Action() string { return c.action }

// Payload returns the message payload. It points into the exchange buffer
// and is valid only during the handler call: copy it to keep it.
func (c *Call) Payload() []byte { return c.payload }

// Decode JSON-decodes the payload into v.
func (c *Call) Decode(v any) error {
	if err := json.Unmarshal(c.payload, v); err != nil {
		return &jsonError{op: "decode payload", err: err}
	}
	return nil
}

// Caller returns the invocation context of the message being handled
// (sys_get_caller): its principal, attribution, source, topic and time.
func (c *Call) Caller() (Caller, error) {
	b, err := collect(sysGetCaller(outArgs()))
	if err != nil {
		return Caller{}, err
	}
	return decodeCaller(b)
}

type handler struct {
	action string
	fn     func(*Call) Result
}

// Registered state. Written by the registration functions during init, read
// by the exports.
var (
	handlers    = map[string]*handler{}
	handlerList []*handler // the same handlers, in registration order
	onInstall   func() error
	onUpgrade   func(prev string) error
)

// Handle registers fn as the handler of action, the handler value of a
// [subscribe] entry in the capsule's manifest. Call it from init: main never
// runs in a reactor. It panics if action is empty, fn is nil or action
// already has a handler.
func Handle(action string, fn func(c *Call) Result) {
	switch {
	case action == "":
		panic("sdk: Handle: empty action")
	case fn == nil:
		panic("sdk: Handle: nil handler for action " + action)
	case handlers[action] != nil:
		panic("sdk: Handle: action " + action + " registered twice")
	}
	h := &handler{action: action, fn: fn}
	handlers[action] = h
	handlerList = append(handlerList, h)
}

// scanLimit is the handler count up to which lookup scans handlerList: for a
// few handlers, comparing names is several times faster than hashing in
// wasm (~10 ns against ~100 ns for a map lookup).
const scanLimit = 16

// lookup returns the handler of action, or nil.
func lookup(action []byte) *handler {
	if len(handlerList) <= scanLimit {
		for _, h := range handlerList {
			if h.action == string(action) { // no allocation
				return h
			}
		}
		return nil
	}
	return handlers[string(action)] // no allocation either
}

// runloopImport is the import path that links the run export.
const runloopImport = "github.com/astrid-go/astrid/sdk/runloop"

// Run registers fn as the capsule's run loop, which makes it a run-loop
// capsule. The host calls fn on a goroutine of the capsule's actor; fn
// normally subscribes, calls [SignalReady] and loops on [Recv]. Returning nil
// ends the incarnation normally; returning an error logs it and traps, like a
// panic, so the supervisor restarts the capsule.
//
// The capsule must also blank-import github.com/astrid-go/astrid/sdk/runloop,
// which holds the run export. Run panics if that import is missing (failing
// _initialize loudly), if fn is nil, or if it is called twice. Call it from
// init.
func Run(fn func() error) {
	switch {
	case !loop.Exported:
		panic(`sdk: Run: the run export is not linked: add import _ "` + runloopImport + `"`)
	case fn == nil:
		panic("sdk: Run: nil run loop")
	case loop.Fn != nil:
		panic("sdk: Run: run loop registered twice")
	}
	loop.Fn = fn
}

// OnInstall registers the install hook, run by the host in phase install
// (astrid_install). A non-nil error fails the install. Call it from init; it
// panics if fn is nil or a hook is already registered.
func OnInstall(fn func() error) {
	switch {
	case fn == nil:
		panic("sdk: OnInstall: nil hook")
	case onInstall != nil:
		panic("sdk: OnInstall: hook registered twice")
	}
	onInstall = fn
}

// OnUpgrade registers the upgrade hook, run by the host in phase upgrade
// (astrid_upgrade) with the previous version. A non-nil error fails the
// upgrade. Call it from init; it panics if fn is nil or a hook is already
// registered.
func OnUpgrade(fn func(prev string) error) {
	switch {
	case fn == nil:
		panic("sdk: OnUpgrade: nil hook")
	case onUpgrade != nil:
		panic("sdk: OnUpgrade: hook registered twice")
	}
	onUpgrade = fn
}

// Guest-owned buffers the host reads and writes. Package variables keep them
// referenced, so the GC never frees memory the host holds a pointer to.
var (
	// exch is the exchange buffer returned by astrid_buffer. The host caches
	// its address and writes inbound data (action + payload) into it.
	exch []byte
	// resultBuf holds the framed result of the last export call until the
	// host has read it (before its next call into the guest).
	resultBuf = make([]byte, 0, 4096)
	// cur is the Call handed to handlers, reused so that dispatch does not
	// allocate.
	cur Call
	// ticks counts messages between yields.
	ticks uint32
)

// minExchange is the smallest exchange buffer handed out.
const minExchange = 16 << 10

// exchangeBuffer returns the exchange buffer, grown to at least size bytes.
// The buffer is only replaced when it is too small; the host calls again only
// when it needs more room.
func exchangeBuffer(size uint32) []byte {
	if uint64(size) > uint64(len(exch)) || exch == nil {
		n := max(uint64(minExchange), uint64(len(exch))*2)
		for n < uint64(size) {
			n *= 2
		}
		exch = make([]byte, n)
	}
	return exch
}

// exchangeRange returns the part of the exchange buffer (at guest address
// base) that starts at ptr and is n bytes long. It reports false when the
// range is not inside the buffer.
func exchangeRange(base, ptr, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	off := uint64(ptr) - uint64(base)
	if ptr < base || off+uint64(n) > uint64(len(exch)) {
		return nil, false
	}
	return exch[off : off+uint64(n)], true
}

// yieldSometimes gives the Go scheduler, and so the GC's workers, a turn
// every yieldEvery calls. See yieldEvery.
func yieldSometimes() {
	ticks++
	if ticks%yieldEvery == 0 {
		runtime.Gosched()
	}
}

// trigger dispatches one message to the handler of action and returns its
// result in InterceptResult framing. The returned slice is resultBuf, valid
// until the next export call. It allocates nothing itself.
func trigger(action, payload []byte) []byte {
	yieldSometimes()
	h := lookup(action)
	var r Result
	if h == nil {
		r = Deny("unknown hook action: " + string(action))
	} else {
		cur = Call{action: h.action, payload: payload}
		r = h.fn(&cur)
		cur = Call{} // drop the reference into the exchange buffer
	}
	resultBuf = r.appendTo(resultBuf[:0])
	return resultBuf
}

// batch is the astrid_hook_batch loop: it handles the first message, then
// hands each result to next. next reports taken=false when the host did not
// take the result (an error: it is returned to the host as the export's
// result), more=false when the host took it and the call is over, and
// otherwise the lengths of the next message (action then payload, al and pl
// bytes) that the host wrote at the start of the exchange buffer.
func batch(action, payload []byte, next func(res []byte) (al, pl uint32, taken, more bool)) []byte {
	res := trigger(action, payload)
	for {
		al, pl, taken, more := next(res)
		if !taken {
			return res
		}
		if !more {
			return nil
		}
		if uint64(al)+uint64(pl) > uint64(len(exch)) {
			panic("sdk: host passed a message larger than the exchange buffer")
		}
		res = trigger(exch[:al:al], exch[al:al+pl:al+pl])
	}
}

// install runs the install hook and returns its HookResult framing.
func install() []byte {
	var err error
	if onInstall != nil {
		err = onInstall()
	}
	resultBuf = appendHookResult(resultBuf[:0], err)
	return resultBuf
}

// upgrade runs the upgrade hook and returns its HookResult framing.
func upgrade(prev string) []byte {
	var err error
	if onUpgrade != nil {
		err = onUpgrade(prev)
	}
	resultBuf = appendHookResult(resultBuf[:0], err)
	return resultBuf
}
