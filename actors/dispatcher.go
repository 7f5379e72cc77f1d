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
// (plus one overlapping schedule while a run winds down), so a one-slot
// channel never blocks for long. After Stop, late schedules (system
// messages of a stopped actor) run on their own goroutine.
type pinnedDispatcher struct {
	work chan func()
	done chan struct{}
	once sync.Once
}

var _ actor.Dispatcher = (*pinnedDispatcher)(nil)

func newPinnedDispatcher() *pinnedDispatcher {
	d := &pinnedDispatcher{work: make(chan func(), 1), done: make(chan struct{})}
	go d.loop()
	return d
}

func (d *pinnedDispatcher) loop() {
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.done:
			return
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *pinnedDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	case <-d.done:
		go fn()
	}
}

// Throughput implements actor.Dispatcher: messages per run before the
// mailbox yields (protoactor's default).
func (d *pinnedDispatcher) Throughput() int { return 300 }

// Stop ends the goroutine; idempotent.
func (d *pinnedDispatcher) Stop() { d.once.Do(func() { close(d.done) }) }

// CapsuleProps returns the props of a capsule actor: its producer, a
// pinned dispatcher (stopped with the actor) and the given supervisor
// strategy for panics in our own code.
func CapsuleProps(cfg CapsuleConfig, strategy actor.SupervisorStrategy) *actor.Props {
	d := newPinnedDispatcher()
	cfg.dispatcher = d
	return actor.PropsFromProducer(NewCapsuleActor(cfg), actor.WithDispatcher(d), actor.WithSupervisor(strategy))
}
