package actors

import (
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/asynkron/protoactor-go/actor"
)

// Messages a CapsuleActor receives. Commands are imperative, events past
// tense (STYLE 3.2).

// Invoke asks the capsule to handle msg with the interceptor action, as
// one step of a dispatch chain built by the Router.
type Invoke struct {
	Msg    *bus.Message
	Action string
	// Handle is the interceptor binding's handle id (run-loop delivery).
	Handle uint64
	chain  *chain
	level  int
	index  int
	mb     *Mailbox
}

// payload returns the payload the Invoke's handler gets: the chain's
// current one (modified by an earlier level) or the message's own.
func (m *Invoke) payload() (payload []byte, modified bool) {
	if m.chain != nil {
		return m.chain.payload(m.level)
	}
	return m.Msg.Payload, false
}

// Status asks the actor for a snapshot; the reply is a *StatusReport.
type Status struct{}

// StatusReport is a capsule's state as seen by its actor.
type StatusReport struct {
	ID          string
	Version     string
	State       string
	Incarnation int
	RunLoop     bool
	Queued      int
	// Batched counts the messages that joined a guest call already in
	// progress (capsule.Batch) instead of entering the guest on their own.
	Batched uint64
}

// Events the actor sends to its parent (the supervisor).

// CapsuleStarted is sent when an incarnation has been instantiated.
type CapsuleStarted struct {
	ID          string
	Generation  int
	Incarnation int
}

// CapsuleReady is sent when an incarnation is ready: immediately for
// handler-only capsules, on signal-ready for run-loop capsules.
type CapsuleReady struct {
	ID          string
	Generation  int
	Incarnation int
}

// CapsuleFailed is sent when an incarnation ends abnormally (or normally:
// see Err.Normal()). Err is a *capsule.TrapError for guest failures.
type CapsuleFailed struct {
	ID          string
	Generation  int
	Incarnation int
	Err         error
	// Message is the message being handled when it failed, if any.
	Message *bus.Message
	// Repeat is set when the same message already crashed the capsule: it
	// does not count toward the restart intensity again.
	Repeat bool
	At     time.Time
}

// Kind returns the failure classification of the event.
func (e *CapsuleFailed) Kind() capsule.FailureKind {
	if te, ok := e.Err.(*capsule.TrapError); ok {
		return te.Kind
	}
	return capsule.FailHost
}

// Quarantine tells the actor its capsule exceeded its restart intensity:
// it closes its instance, keeps its bindings and answers every request with
// a typed "quarantined" error until it is restarted by an operator.
type Quarantine struct {
	Reason string
}

// Restart asks the actor to end its current incarnation, if any, and start
// a new one (sent by the supervisor after its backoff, or to restart a
// group member under one_for_all / rest_for_one).
type Restart struct {
	Reason string
}

// Bind switches the capsule's interceptor routes to this actor (the new
// generation of a hot upgrade) and queues Inbox's messages, in order, on its
// own recv path.
type Bind struct {
	Inbox *hoststate.Inbox
}

// Retire asks the old generation of a hot upgrade to hand over to
// Successor: its run loop stops, its unconsumed inbox and the routes move to
// the successor (Bind), Invokes already queued are still handled, later
// ones are forwarded, and the actor stops shortly after.
type Retire struct {
	Successor *actor.PID
}

// Pause stops the capsule's intake: messages keep arriving and wait, in
// order, until Resume (sent while a dependency restarts).
type Pause struct{}

// Resume delivers what arrived during a Pause, in order, and resumes
// intake.
type Resume struct{}

// runEnded and readySignalled come from the goroutines of one incarnation;
// inst identifies it (incarnation numbers start again at 1 when protoactor
// replaces the actor value after a panic).
type runEnded struct {
	incarnation int
	inst        *capsule.Instance
	err         error
}

type readySignalled struct {
	incarnation int
	inst        *capsule.Instance
}
