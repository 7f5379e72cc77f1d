package actors

import (
	"sync"
	"sync/atomic"

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
	w := newMailboxWatch()
	cfg.watch = w
	return actor.PropsFromProducer(NewCapsuleActor(cfg), actor.WithDispatcher(d), actor.WithMailbox(actor.Unbounded(w)))
}

// mailboxWatch is protoactor mailbox middleware that counts a capsule
// actor's messages, so that a guest call waiting for the next Invoke
// (batchFeed) ends as soon as the actor has anything else to handle: a
// stop, a restart, a status request.
//
// # Concurrency
//
// Goroutine-safe: senders post, the actor's goroutine receives and waits.
type mailboxWatch struct {
	posted, received atomic.Int64
	// note gets a token on every post; a waiter drains it first.
	note chan struct{}
}

var _ actor.MailboxMiddleware = (*mailboxWatch)(nil)

func newMailboxWatch() *mailboxWatch { return &mailboxWatch{note: make(chan struct{}, 1)} }

// MailboxStarted implements actor.MailboxMiddleware.
func (w *mailboxWatch) MailboxStarted() {}

// MessagePosted implements actor.MailboxMiddleware.
func (w *mailboxWatch) MessagePosted(any) {
	w.posted.Add(1)
	select {
	case w.note <- struct{}{}:
	default:
	}
}

// MessageReceived implements actor.MailboxMiddleware; protoactor calls it
// after the actor handled the message.
func (w *mailboxWatch) MessageReceived(any) { w.received.Add(1) }

// MailboxEmpty implements actor.MailboxMiddleware.
func (w *mailboxWatch) MailboxEmpty() {}

// clearNote drops a token left by posts already accounted for.
func (w *mailboxWatch) clearNote() {
	select {
	case <-w.note:
	default:
	}
}

// others reports whether messages besides the one being handled wait.
func (w *mailboxWatch) others() bool { return w.posted.Load()-w.received.Load() > 1 }
