// Package sdk is the Go guest SDK for astrid capsules: the library a capsule
// author imports to write a capsule in Go. It wraps the host ABI v1
// (docs/abi.md, import module astrid_v1) in a small idiomatic API and
// implements the guest exports the host calls.
//
// A capsule is a package main built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o capsule.wasm .
//
// In a reactor, main is never run: the host calls _initialize once per
// instance, which runs the package init functions, and then calls exports.
// So a capsule registers everything in init:
//
//	func init() {
//		sdk.Handle("echo", func(c *sdk.Call) sdk.Result {
//			return sdk.Final(c.Payload())
//		})
//	}
//
//	func main() {}
//
// # Capsule kinds
//
// An interceptor capsule registers handlers with [Handle]; the action name is
// the manifest's [subscribe] handler value. The host calls the
// astrid_hook_batch (or astrid_hook_trigger) export, which finds the
// handler by action and frames its [Result]. An action nobody registered
// is denied with "unknown hook action: X", so a misconfigured manifest
// fails loudly.
//
// A run-loop capsule registers its loop with [Run] and blank-imports
// github.com/astrid-go/astrid/sdk/runloop, which holds the run export. The
// host treats a module as a run-loop capsule exactly when it exports run, and
// Go exports are static, so the export lives in its own package that only
// run-loop capsules link. [Run] panics (and so fails _initialize) when the
// import is missing.
//
// Install and upgrade hooks are registered with [OnInstall] and [OnUpgrade].
// Their exports are always present and succeed when no hook is registered.
//
// # Exports implemented here
//
//   - astrid_buffer(size) returns the exchange buffer, which the host fills
//     with the action name and payload of each message. It is reused and only
//     grows when the host asks for more room.
//   - astrid_hook_trigger(action, payload) dispatches one message and returns
//     its result in InterceptResult framing from a reused result buffer.
//   - astrid_hook_batch(action, payload) does the same, then hands each
//     result to the host's hook_next and dispatches the next message the
//     host wrote into the exchange buffer, until the host has none
//     (docs/abi.md, "Batched handler calls"). Handlers cannot tell the two
//     apart: each call of a handler still sees one message.
//   - astrid_install() and astrid_upgrade(prev) run the lifecycle hooks and
//     return HookResult framing.
//
// Host calls that return data write into one reused out buffer, which grows
// (and is filled with result_read) only when a result does not fit. Every
// buffer is held by a package variable so the guest GC never frees memory the
// host still points at. The hook path allocates nothing beyond what the
// author's handler allocates.
//
// # The guest GC and yielding
//
// A Go guest's goroutines, the GC's background workers included, run only
// while an export is executing and blocks or yields: there is no preemption
// in wasm. A reactor whose exports allocate but never yield stalls its GC and
// its heap grows without bound (perf-baseline pitfall 9). The SDK therefore
// calls runtime.Gosched once every 64 hook triggers, once every 64 received
// messages, and whenever a Recv or Poll comes back empty. A run loop that
// computes for a long time without calling the SDK should call
// runtime.Gosched itself now and then.
//
// # Panics
//
// The SDK does not recover panics in handlers, hooks or the run loop. A guest
// panic traps the instance: the host discards it (a trapped Go runtime is
// unusable) and reports the trap to the capsule's supervisor, which decides
// whether to restart. A run loop that returns a non-nil error is logged and
// then traps the same way; returning nil is a normal end.
//
// # Concurrency
//
// Nothing in this package is safe for concurrent use. Call it from the
// goroutine running the current export (a handler, a hook or the run loop).
// Data returned by the SDK (byte slices, strings, envelopes) is always a copy
// the caller owns, except [Call.Payload], which is valid only during the call.
//
// # Errors
//
// Host functions report failures as values, never traps. The SDK returns them
// as *[Error], carrying a [Code] named after docs/abi.md and the host's
// human-readable detail. Compare with errors.Is against the sentinels
// ([ErrNotFound], [ErrCapabilityDenied], [ErrTimeout], [ErrCancelled],
// [ErrClosed], [ErrCASMismatch], ...): Is compares codes only. Errors made by
// the SDK itself (JSON encoding and decoding) are prefixed "sdk: ".
//
// # Notes
//
// Outside GOOS=wasip1 the package still compiles, so capsules can be built,
// vetted and unit-tested on the host, but every host function fails with
// [ErrInternal] ("sdk: not running inside an astrid host").
//
// This package imports only the standard library and sdk/internal/loop.
package sdk
