package capsule

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/astrid-go/astrid/hoststate"
)

// FailureKind classifies why a guest call failed; the supervisor's decider
// chooses its directive from it.
type FailureKind uint8

// Failure kinds.
const (
	// FailTrap is a wasm trap: unreachable (a Go panic), out-of-bounds
	// access, stack overflow and the like.
	FailTrap FailureKind = iota + 1
	// FailDeadline is a call that ran past its deadline and was stopped.
	FailDeadline
	// FailMemory is a guest that tried to grow past its memory cap.
	FailMemory
	// FailExit is a guest that called proc_exit; see TrapError.ExitCode.
	FailExit
	// FailCancelled is a call stopped because the capsule is stopping.
	FailCancelled
	// FailHost is a failure of the host around the call (bad result
	// framing, an instance that cannot be created).
	FailHost
	// FailReadiness is a run-loop capsule that did not signal ready within
	// its readiness timeout (decided by the supervisor).
	FailReadiness
)

func (k FailureKind) String() string {
	switch k {
	case FailTrap:
		return "trap"
	case FailDeadline:
		return "deadline"
	case FailMemory:
		return "memory-limit"
	case FailExit:
		return "exit"
	case FailCancelled:
		return "cancelled"
	case FailHost:
		return "host-error"
	case FailReadiness:
		return "readiness-timeout"
	default:
		return "unknown"
	}
}

// TrapError reports a failed guest call. After any TrapError the instance
// is closed: a Go guest's runtime is unusable after a trap even when wazero
// has not closed the module (perf-baseline pitfall 7).
type TrapError struct {
	Capsule  string
	Export   string
	Kind     FailureKind
	ExitCode uint32
	Err      error
	// Stderr holds the tail of what the guest wrote to stderr (a Go panic
	// message and stack, for instance), for diagnosis.
	Stderr string
}

func (e *TrapError) Error() string {
	msg := fmt.Sprintf("capsule %s: %s: %s", e.Capsule, e.Export, e.Kind)
	if e.Kind == FailExit {
		msg += fmt.Sprintf(" (code %d)", e.ExitCode)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *TrapError) Unwrap() error { return e.Err }

// Normal reports whether the failure is a normal end: proc_exit(0).
func (e *TrapError) Normal() bool { return e.Kind == FailExit && e.ExitCode == 0 }

// ResultKind is the outcome of one interceptor call (docs/abi.md framing).
type ResultKind uint8

// Interceptor outcomes.
const (
	Continue ResultKind = iota
	Final
	Deny
	Errored
)

func (k ResultKind) String() string {
	switch k {
	case Continue:
		return "continue"
	case Final:
		return "final"
	case Deny:
		return "deny"
	case Errored:
		return "error"
	default:
		return fmt.Sprintf("result(%d)", uint8(k))
	}
}

// Result is the decoded InterceptResult of one astrid_hook_trigger call.
// Data is owned by the caller.
type Result struct {
	Kind ResultKind
	// Data is the continue/final payload (nil means unchanged) or the deny
	// reason / error message.
	Data []byte
	// Code names a host-side failure for Errored results produced by the
	// runtime rather than the guest (capsule-failed, quarantined,
	// backpressure); empty otherwise.
	Code string
}

// DecodeResult parses the InterceptResult framing.
func DecodeResult(b []byte) Result {
	if len(b) == 0 {
		return Result{Kind: Continue}
	}
	switch b[0] {
	case 0x00:
		if len(b) == 1 {
			return Result{Kind: Continue}
		}
		return Result{Kind: Continue, Data: b[1:]}
	case 0x01:
		return Result{Kind: Final, Data: b[1:]}
	case 0x02:
		return Result{Kind: Deny, Data: b[1:]}
	case 0x03:
		return Result{Kind: Errored, Data: b[1:]}
	default:
		return Result{Kind: Continue, Data: b}
	}
}

type instanceKey struct{}

// InstanceConfig configures one instance.
type InstanceConfig struct {
	// CallTimeout bounds each interceptor and hook call (0 = 30 s).
	CallTimeout time.Duration
}

// Instance is one instantiated capsule module bound to its State.
//
// # Concurrency
//
// Not goroutine-safe: the owning capsule actor is its only caller (wasm
// instances must never be called concurrently). Close and Dead may be
// called from any goroutine.
type Instance struct {
	module *Module
	mod    api.Module
	state  *hoststate.State
	ctx    context.Context // carries the Instance for host functions; cancelled when the instance ends
	cancel context.CancelFunc
	// deadline is the per-call deadline of handler calls: a timer created
	// once per instance and reset per call; when it fires it cancels ctx,
	// and wazero's own watcher closes the module (closing it from another
	// goroutine ourselves would race with a running guest).
	deadline *time.Timer
	expired  atomic.Bool
	running  atomic.Bool // a guest call is in progress
	timeout  time.Duration
	stderr   *guestWriter
	stdout   *guestWriter

	buffer, hook, batchHook, run, install, upgrade api.Function
	// batch feeds queued messages to the astrid_hook_batch call in
	// progress (nil outside one); see InvokeBatch.
	batch          Batch
	bufPtr, bufCap uint32
	stack          [4]uint64

	dead atomic.Bool
}

// Instantiate creates an instance bound to st and runs _initialize. The
// State's context is the incarnation context: cancelling it stops any call
// in progress.
func (m *Module) Instantiate(st *hoststate.State, cfg InstanceConfig) (*Instance, error) {
	in := &Instance{module: m, state: st, timeout: cfg.CallTimeout}
	if in.timeout <= 0 {
		in.timeout = 30 * time.Second
	}
	base, cancel := context.WithCancel(st.Context())
	in.ctx, in.cancel = context.WithValue(base, instanceKey{}, in), cancel
	in.stdout = newGuestWriter(st, "stdout")
	in.stderr = newGuestWriter(st, "stderr")
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStdout(in.stdout).
		WithStderr(in.stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStartFunctions()
	ictx, cancel := context.WithTimeout(in.ctx, in.timeout)
	defer cancel()
	mod, err := m.class.rt.InstantiateModule(ictx, m.code, mc)
	if err != nil {
		return nil, in.classify("instantiate", ictx, err)
	}
	in.mod = mod
	if m.exports.Initialize {
		if _, err := mod.ExportedFunction("_initialize").Call(ictx); err != nil {
			_ = mod.Close(context.Background())
			return nil, in.classify("_initialize", ictx, err)
		}
	}
	in.buffer = mod.ExportedFunction("astrid_buffer")
	if m.exports.HookTrigger {
		in.hook = mod.ExportedFunction("astrid_hook_trigger")
	}
	if m.exports.HookBatch {
		in.batchHook = mod.ExportedFunction("astrid_hook_batch")
	}
	if m.exports.Run {
		in.run = mod.ExportedFunction("run")
	}
	if m.exports.Install {
		in.install = mod.ExportedFunction("astrid_install")
	}
	if m.exports.Upgrade {
		in.upgrade = mod.ExportedFunction("astrid_upgrade")
	}
	return in, nil
}

// State returns the instance's host state.
func (in *Instance) State() *hoststate.State { return in.state }

// Module returns the compiled module the instance came from.
func (in *Instance) Module() *Module { return in.module }

// Dead reports whether the instance has failed or been closed.
func (in *Instance) Dead() bool { return in.dead.Load() }

// Close closes the instance; safe to call more than once and from any
// goroutine (a call in progress then fails with FailCancelled).
func (in *Instance) Close() {
	if in.dead.Swap(true) {
		return
	}
	// Cancelling the instance context ends a blocking host call (sleep,
	// recv, kv) of a call in progress at once.
	in.cancel()
	// A call in progress (a run loop on its goroutine) is stopped by
	// wazero's watcher of the cancelled context, which closes the module
	// on the calling goroutine; closing it from here would race with the
	// guest. Otherwise close it now.
	if in.mod != nil && !in.running.Load() {
		// The exit code is what a later call reports; a plain Close (code
		// 0) would read as a normal proc_exit(0).
		_ = in.mod.CloseWithExitCode(context.Background(), sys.ExitCodeContextCanceled)
	}
}

func (in *Instance) classify(export string, ctx context.Context, err error) error {
	closedByHost := in.dead.Swap(true)
	in.cancel()
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
	te := &TrapError{Capsule: in.state.CapsuleID(), Export: export, Err: err, Stderr: in.stderr.Tail()}
	var exit *sys.ExitError
	switch {
	case in.expired.Load():
		te.Kind = FailDeadline
	case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded:
		te.Kind = FailDeadline
	case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeContextCanceled:
		te.Kind = FailCancelled
	case ctx.Err() == context.DeadlineExceeded && in.state.Context().Err() == nil:
		te.Kind = FailDeadline
	case in.state.Context().Err() != nil, closedByHost:
		te.Kind = FailCancelled
	case in.stderr.oom || outOfMemory(te.Stderr, err):
		te.Kind = FailMemory
	case errors.As(err, &exit):
		te.Kind = FailExit
		te.ExitCode = exit.ExitCode()
	default:
		te.Kind = FailTrap
	}
	return te
}

// overran reports a call that returned normally although its context ended
// while it ran (a blocking host call returned cancelled and the guest
// returned before wazero closed the module): the call still failed its
// deadline or was stopped, so the outcome must not depend on that race.
func (in *Instance) overran(export string, ctx context.Context) error {
	if in.expired.Load() {
		return in.classify(export, ctx, context.DeadlineExceeded)
	}
	if ctx.Err() == nil && in.ctx.Err() == nil {
		return nil
	}
	return in.classify(export, ctx, cmp.Or(ctx.Err(), in.ctx.Err()))
}

// arm starts the deadline of one handler call: a timer created once per
// instance and reset per call (no allocation). When it fires the instance
// context is cancelled: wazero's watcher stops the guest at its next check
// and a blocking host call returns at once; the call is reported as a
// deadline (the instance is done either way).
func (in *Instance) arm() {
	if in.deadline == nil {
		in.deadline = time.AfterFunc(in.timeout, in.expire)
		return
	}
	in.deadline.Reset(in.timeout)
}

// disarm ends the deadline of a call that returned.
func (in *Instance) disarm() { in.deadline.Stop() }

func (in *Instance) expire() {
	in.expired.Store(true)
	in.cancel()
}

func outOfMemory(stderr string, err error) bool {
	return strings.Contains(stderr, "out of memory") ||
		strings.Contains(err.Error(), "growMemory") ||
		strings.Contains(stderr, "cannot allocate memory")
}

// ensureBuffer makes the guest exchange buffer at least n bytes.
func (in *Instance) ensureBuffer(ctx context.Context, n uint32) error {
	if n <= in.bufCap && in.bufPtr != 0 {
		return nil
	}
	if in.buffer == nil {
		return &TrapError{Capsule: in.state.CapsuleID(), Export: "astrid_buffer", Kind: FailHost,
			Err: errors.New("guest has no astrid_buffer export")}
	}
	size := max(n, 4096)
	in.stack[0] = uint64(size)
	if err := in.buffer.CallWithStack(ctx, in.stack[:]); err != nil {
		return in.classify("astrid_buffer", ctx, err)
	}
	ptr := uint32(in.stack[0])
	if ptr == 0 || uint64(ptr)+uint64(size) > uint64(in.mod.Memory().Size()) {
		in.Close()
		return &TrapError{Capsule: in.state.CapsuleID(), Export: "astrid_buffer", Kind: FailHost,
			Err: fmt.Errorf("guest returned buffer %#x of %d bytes outside its memory", ptr, size)}
	}
	in.bufPtr, in.bufCap = ptr, size
	return nil
}

// Invoke calls astrid_hook_trigger with action and payload under the
// invocation context of msg and returns the decoded result. Any error is a
// *TrapError and leaves the instance closed.
func (in *Instance) Invoke(action string, payload []byte) (Result, error) {
	return in.trigger(in.hook, "astrid_hook_trigger", action, payload)
}

// trigger runs one interceptor export (astrid_hook_trigger, or
// astrid_hook_batch with in.batch set) on action and payload.
func (in *Instance) trigger(fn api.Function, export, action string, payload []byte) (Result, error) {
	if in.dead.Load() {
		return Result{}, ErrClosed
	}
	if fn == nil {
		return Result{}, &TrapError{Capsule: in.state.CapsuleID(), Export: export, Kind: FailHost,
			Err: errors.New("capsule has no interceptor export")}
	}
	ctx := in.ctx
	in.running.Store(true)
	defer in.running.Store(false)
	in.arm()
	defer in.disarm()
	n := len(action) + len(payload)
	if uint64(n) > 1<<31 {
		return Result{}, &TrapError{Capsule: in.state.CapsuleID(), Export: export, Kind: FailHost,
			Err: errors.New("payload too large")}
	}
	if err := in.ensureBuffer(ctx, uint32(n)); err != nil {
		return Result{}, err
	}
	mem := in.mod.Memory()
	if !mem.WriteString(in.bufPtr, action) || !mem.Write(in.bufPtr+uint32(len(action)), payload) {
		in.Close()
		return Result{}, &TrapError{Capsule: in.state.CapsuleID(), Export: export, Kind: FailHost,
			Err: errors.New("exchange buffer outside guest memory")}
	}
	in.stack[0] = uint64(in.bufPtr)
	in.stack[1] = uint64(len(action))
	in.stack[2] = uint64(in.bufPtr + uint32(len(action)))
	in.stack[3] = uint64(len(payload))
	if err := fn.CallWithStack(ctx, in.stack[:]); err != nil {
		return Result{}, in.classify(export, ctx, err)
	}
	if err := in.overran(export, ctx); err != nil {
		return Result{}, err
	}
	packed := in.stack[0]
	rptr, rlen := uint32(packed>>32), uint32(packed)
	if rlen == 0 {
		return Result{Kind: Continue}, nil
	}
	view, ok := mem.Read(rptr, rlen)
	if !ok {
		in.Close()
		return Result{}, &TrapError{Capsule: in.state.CapsuleID(), Export: export, Kind: FailHost,
			Err: fmt.Errorf("result %#x+%d outside guest memory", rptr, rlen)}
	}
	return DecodeResult(bytes.Clone(view)), nil
}

// Run calls the run export and blocks until it returns. A run export that
// returns without error is a normal end of the incarnation.
func (in *Instance) Run() error {
	if in.dead.Load() {
		return ErrClosed
	}
	if in.run == nil {
		return &TrapError{Capsule: in.state.CapsuleID(), Export: "run", Kind: FailHost, Err: errors.New("capsule has no run export")}
	}
	in.running.Store(true)
	defer in.running.Store(false)
	if _, err := in.run.Call(in.ctx); err != nil {
		return in.classify("run", in.ctx, err)
	}
	// A loop that returned because the host stopped it (recv or sleep
	// reported cancelled/closed) was cancelled; it did not end normally.
	return in.overran("run", in.ctx)
}

// HasRun reports whether the instance is a run-loop capsule.
func (in *Instance) HasRun() bool { return in.run != nil }

// HookError is a lifecycle hook that reported failure (HookResult 0x03).
type HookError struct {
	Capsule, Hook, Message string
}

func (e *HookError) Error() string {
	return fmt.Sprintf("capsule %s: %s hook failed: %s", e.Capsule, e.Hook, e.Message)
}

// DefaultHookTimeout bounds a lifecycle hook when Install or Upgrade is
// given no timeout (the reference's 10 minutes).
const DefaultHookTimeout = 10 * time.Minute

// Install runs the install hook if the module has one; timeout <= 0 means
// DefaultHookTimeout. A failed call is a *TrapError (and closes the
// instance); a hook reporting failure is a *HookError.
func (in *Instance) Install(timeout time.Duration) error {
	if in.install == nil {
		return nil
	}
	return in.lifecycle("astrid_install", in.install, timeout)
}

// Upgrade runs the upgrade hook with the previous version, if present;
// errors and timeout as for Install.
func (in *Instance) Upgrade(prev string, timeout time.Duration) error {
	if in.upgrade == nil {
		return nil
	}
	return in.lifecycle("astrid_upgrade", in.upgrade, timeout, prev)
}

func (in *Instance) lifecycle(name string, fn api.Function, timeout time.Duration, arg ...string) error {
	if in.dead.Load() {
		return ErrClosed
	}
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(in.ctx, timeout)
	defer cancel()
	var params []uint64
	if len(arg) == 1 {
		if err := in.ensureBuffer(ctx, uint32(len(arg[0]))); err != nil {
			return err
		}
		if !in.mod.Memory().WriteString(in.bufPtr, arg[0]) {
			in.Close()
			return &TrapError{Capsule: in.state.CapsuleID(), Export: name, Kind: FailHost,
				Err: errors.New("exchange buffer outside guest memory")}
		}
		params = []uint64{uint64(in.bufPtr), uint64(len(arg[0]))}
	}
	res, err := fn.Call(ctx, params...)
	if err != nil {
		return in.classify(name, ctx, err)
	}
	if err := in.overran(name, ctx); err != nil {
		return err
	}
	rptr, rlen := uint32(res[0]>>32), uint32(res[0])
	if rlen == 0 {
		return nil
	}
	view, ok := in.mod.Memory().Read(rptr, rlen)
	if !ok {
		return &HookError{Capsule: in.state.CapsuleID(), Hook: name, Message: "result outside guest memory"}
	}
	if view[0] == 0x03 {
		return &HookError{Capsule: in.state.CapsuleID(), Hook: name, Message: string(view[1:])}
	}
	return nil
}

// guestWriter sends guest stdout/stderr to the capsule's logs line by line
// and keeps the last few KiB for failure diagnosis.
//
// # Concurrency
//
// Written only by the goroutine executing the guest; Tail is read by the
// same goroutine after a failed call.
type guestWriter struct {
	st     *hoststate.State
	stream string
	line   []byte
	tail   []byte
	// oom is set once the guest reported running out of memory (the Go
	// runtime prints it before a long stack dump that pushes it out of the
	// tail).
	oom bool
}

const tailBytes = 4096

func newGuestWriter(st *hoststate.State, stream string) *guestWriter {
	return &guestWriter{st: st, stream: stream}
}

func (w *guestWriter) Write(p []byte) (int, error) {
	w.tail = append(w.tail, p...)
	if len(w.tail) > 2*tailBytes {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailBytes:]...)
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		w.emit(w.line[:i])
		w.line = w.line[i+1:]
	}
	if len(w.line) > 16<<10 {
		w.emit(w.line)
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *guestWriter) emit(line []byte) {
	if !w.oom && bytes.Contains(line, []byte("out of memory")) {
		w.oom = true
	}
	level := int32(hoststate.LevelInfo)
	if w.stream == "stderr" {
		level = hoststate.LevelWarn
	}
	w.st.LogStream(level, w.stream, string(line))
}

// Tail returns the last bytes written.
func (w *guestWriter) Tail() string {
	t := w.tail
	if len(t) > tailBytes {
		t = t[len(t)-tailBytes:]
	}
	return string(t)
}
