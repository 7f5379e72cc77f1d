// Package actors runs each capsule as one protoactor-go actor and routes
// messages to them.
//
// A CapsuleActor owns its capsule's current wazero instance and
// hoststate.State exclusively (the single-thread store rule) and the inbox
// that feeds its recv path across incarnations. Handler calls run on the
// actor one message at a time; a run-loop capsule's run export runs on a
// goroutine the actor starts and waits for, and interceptor messages for it
// go through its inbox instead of into the running instance. A trap ends
// the instance: the actor starts a fresh one at once, retries the message
// once, dead-letters it if it crashes again, and reports every failure to
// its parent (the supervisor) as a *CapsuleFailed.
//
// The Router subscribes once per interceptor pattern and turns each NATS
// message into a chain of *Invoke messages ordered by priority, with
// same-priority fan-out, following the reference dispatcher; the chain's
// outcome answers a requester (typed errors in the Astrid-Error header).
// Mailbox bounds each capsule's queue and applies its overflow policy.
// Transport adapts a *bus.Conn to hoststate.Transport.
//
// actors may import capsule, hoststate, bus and manifests; it is the only
// package besides supervisor that imports protoactor-go.
//
// # Concurrency
//
// CapsuleActor state is owned by the actor. Router and Mailbox are
// goroutine-safe (an atomic snapshot of routes; slot channels and atomic
// counters). A chain is advanced by the actors running it.
//
// # Errors
//
// Failures travel as messages (*CapsuleFailed with a *capsule.TrapError),
// never as panics; typed error replies use the codes capsule-failed,
// quarantined, denied, backpressure, quota, dead-lettered, handler-error.
package actors
