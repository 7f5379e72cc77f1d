// Package capsule runs capsule modules on wazero: one process-wide Engine
// with a shared (optionally on-disk) compilation cache, one runtime per
// memory-limit class with WASI preview1 and the astrid_v1 host module
// (docs/abi.md), compiled Modules keyed by the SHA-256 of their binary, and
// Instances that bind one instantiated module to one *hoststate.State.
//
// capsule is the only package that imports wazero. It may import hoststate
// and bus (through hoststate's types) and nothing above them.
//
// A Go guest is a reactor: Instantiate runs _initialize exactly once. A
// trap, a deadline, a memory-limit failure or a proc_exit ends the instance:
// Invoke, Run and the lifecycle hooks return a *TrapError classifying the
// failure (FailureKind) and close the instance, because a Go guest's runtime
// is unusable after a trap even when wazero has not closed the module. The
// supervisor decides what happens next.
//
// Host functions find the calling Instance in the call context, so a single
// host module per runtime serves every capsule without sharing per-capsule
// state. Guest pointers and lengths are bounds-checked through wazero's
// Memory API: a bad pointer yields invalid-input, never a host panic.
//
// # Concurrency
//
// Engine and Module are goroutine-safe. An Instance is not: its owning
// capsule actor is the only caller. Instance.Close and Instance.Dead may be
// called from any goroutine; Close, or cancelling the State's context,
// stops a call in progress, including one blocked in a host function, and
// that call reports FailCancelled (WithCloseOnContextDone plus the call
// context handed to blocking host functions). A call whose deadline or
// cancellation fired while it ran is reported as such even if the guest
// managed to return.
//
// # Errors
//
// ErrBadModule wraps every reason a binary cannot be a capsule (compile
// failure, unknown imports, wrong signatures). *TrapError reports failed
// guest calls; *HookError a lifecycle hook that reported failure.
package capsule
