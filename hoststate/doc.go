// Package hoststate holds the per-capsule state behind every host function a
// capsule calls: the Go counterpart of astrid-capsule's HostState
// (reference: seed-host_state.rs).
//
// A State carries the capsule's identity (id, owner principal, per-load
// session UUID), its resolved configuration and the names of its secret
// keys, the IPC ACLs (publish/subscribe patterns; empty means deny all), the
// per-(capsule, principal) IPC rate limiter, the invocation context of the
// message being handled (caller, invoking principal, KV namespace overlay),
// the lifecycle phase, the readiness signal, the cancellation context, the
// interceptor bindings, live subscriptions with an O(1) counter, and the ABI
// result slot. Each host function of docs/abi.md maps onto one State method
// that validates its input, enforces the limits of astrid-semantics.md and
// returns an *Error carrying an ABI error code.
//
// hoststate may import bus (message and matcher types, KV errors) and
// nothing else from the project. It does no I/O of its own: publishing and
// subscribing go through the Transport the actors package injects, and KV
// through a KVStore (*bus.KV in production).
//
// # Concurrency
//
// A State is owned by exactly one capsule actor and never shared. Host
// functions run on the goroutine executing the guest: the actor's goroutine
// for handler calls, or the run goroutine the actor starts (and waits for)
// while a run-loop capsule's run export executes; the actor does not touch
// the State meanwhile. Inbox, SignalReady/Ready and Cancel are the
// goroutine-safe exceptions.
//
// Blocking host functions (Recv, Sleep, the KV methods) take the guest
// call's context, which carries the call deadline; they also end when the
// incarnation context ends. Calls made after Cancel fail with closed
// (non-blocking) or cancelled (blocking).
//
// # Errors
//
// Every failing method returns an *Error whose Code is the ABI error code;
// errors.Is works against the Err* sentinels (which carry no detail).
// Details never contain secrets, host paths or addresses.
package hoststate
