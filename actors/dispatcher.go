package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// pinnedDispatcher runs one capsule actor's mailbox on one long-lived
// goroutine instead of protoactor's default of a new goroutine per mailbox
// run. Wasm calls need a deep Go stack: on a fresh goroutine every run
// grows it again (runtime.newstack/copystack were ~10% of the request path
// in the profile of docs/benchmarks.md); a pinned goroutine keeps it.
//
// # Concurrency
//
// Goroutine-safe. protoactor schedules a mailbox at most once at a time
// (plus one overlapping schedule while a run winds down), so the one-slot
// channel has room; should it not, the run gets its own goroutine, as
// under protoactor's default dispatcher. Stop closes the channel under the
// same lock Schedule sends under: what was queued before Stop still runs on
// the pinned goroutine, which then exits; later schedules (system messages
// of a stopped actor) run on their own goroutine. None is ever lost.
type pinnedDispatcher struct {
	mu      sync.Mutex
	stopped bool
	work    chan func()
}

var _ actor.Dispatcher = (*pinnedDispatcher)(nil)

func newPinnedDispatcher() *pinnedDispatcher {
	d := &pinnedDispatcher{work: make(chan func(), 1)}
	go d.loop()
	return d
}

func (d *pinnedDispatcher) loop() {
	for fn := range d.work {
		fn()
	}
}

// Schedule implements actor.Dispatcher.
func (d *pinnedDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	if !d.stopped {
		select {
		case d.work <- fn:
			d.mu.Unlock()
			return
		default:
		}
	}
	d.mu.Unlock()
	go fn()
}

// Throughput implements actor.Dispatcher: messages per run before the
// mailbox yields (protoactor's default).
func (d *pinnedDispatcher) Throughput() int { return 300 }

// Stop ends the pinned goroutine once it has run what is queued;
// idempotent, and safe from the pinned goroutine itself.
func (d *pinnedDispatcher) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.stopped = true
		close(d.work)
	}
}

// CapsuleProps returns the props of a capsule actor: its producer and a
// pinned dispatcher (stopped with the actor). A panic in our own actor
// code is handled by the parent's supervisor strategy (protoactor applies
// the parent's props strategy to its children).
func CapsuleProps(cfg CapsuleConfig) *actor.Props {
	d := newPinnedDispatcher()
	cfg.dispatcher = d
	if cfg.mailbox == nil {
		m := cfg.Manifest
		cfg.mailbox = NewMailbox(m.Limits.MailboxSize, m.Limits.Overflow)
	}
	return actor.PropsFromProducer(NewCapsuleActor(cfg), actor.WithDispatcher(d))
}
