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
// Mailbox is each capsule actor's intake: the router queues Invokes in it
// (bounded, with the capsule's overflow policy) and wakes the actor with one
// drain message; a guest call in progress takes the queued messages through
// capsule.Batch, and an idle one waits in the call for the next (ended by
// any other actor message, seen by mailbox middleware). Transport adapts a
// *bus.Conn to hoststate.Transport.
//
// actors may import capsule, hoststate, bus and manifests; it is the only
// package besides supervisor that imports protoactor-go.
//
// # Concurrency
//
// CapsuleActor state is owned by the actor. Router and Mailbox are
// goroutine-safe (an atomic snapshot of routes; a mutex-guarded queue, slot
// channels and atomic counters). A chain is advanced by the actors running
// it.
//
// # Errors
//
// Failures travel as messages (*CapsuleFailed with a *capsule.TrapError),
// never as panics; typed error replies use the codes capsule-failed,
// quarantined, denied, backpressure, quota, dead-lettered, handler-error,
// closed (the capsule stopped with the message still queued).
package actors
