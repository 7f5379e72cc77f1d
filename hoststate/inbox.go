package hoststate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus"
)

// Delivery is one message queued for a run-loop capsule's recv path.
type Delivery struct {
	// Handle is the subscription (or interceptor binding) handle the message
	// arrived on.
	Handle uint64
	// Action is the interceptor action when the message arrived on an
	// interceptor binding; empty for plain subscriptions.
	Action string
	// Msg is the decoded message.
	Msg *bus.Message
}

// Inbox is the bounded FIFO that feeds ipc_recv/ipc_poll. It outlives a
// single incarnation: the capsule actor owns it and hands the same Inbox to
// every new HostState, so messages queued when an incarnation dies are
// delivered, in order, to the next one.
//
// # Concurrency
//
// Goroutine-safe: NATS callbacks push, the guest's run goroutine pops.
type Inbox struct {
	mu      sync.Mutex
	q       []*Delivery
	head    int
	cap     int
	closed  bool
	paused  bool
	signal  chan struct{}
	dropped atomic.Uint64
}

// NewInbox returns an inbox holding at most capacity messages (minimum 1).
func NewInbox(capacity int) *Inbox {
	if capacity < 1 {
		capacity = 1
	}
	return &Inbox{cap: capacity, signal: make(chan struct{}, 1)}
}

// Push appends d. When the inbox is full the oldest message is evicted and
// counted in Dropped; Push reports false in that case. Pushing to a closed
// inbox drops d and reports false.
func (b *Inbox) Push(d *Delivery) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.dropped.Add(1)
		return false
	}
	ok := true
	if b.lenLocked() >= b.cap {
		b.q[b.head] = nil
		b.head++
		b.dropped.Add(1)
		ok = false
		// Without this a full inbox nobody reads would grow its backing
		// array by one slot per push.
		b.compactLocked()
	}
	b.q = append(b.q, d)
	b.mu.Unlock()
	b.notify()
	return ok
}

// Full reports whether the next Push would evict a message.
func (b *Inbox) Full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lenLocked() >= b.cap
}

func (b *Inbox) notify() {
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *Inbox) lenLocked() int { return len(b.q) - b.head }

// Len returns the number of queued messages.
func (b *Inbox) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lenLocked()
}

// Dropped returns how many messages were evicted or refused so far.
func (b *Inbox) Dropped() uint64 { return b.dropped.Load() }

// Poll removes and returns the oldest message for handle (0 = any handle).
// Messages for other handles keep their place.
func (b *Inbox) Poll(handle uint64) (*Delivery, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.paused {
		return nil, false
	}
	for i := b.head; i < len(b.q); i++ {
		d := b.q[i]
		if handle != 0 && d.Handle != handle {
			continue
		}
		if i == b.head {
			b.q[i] = nil
			b.head++
		} else {
			copy(b.q[i:], b.q[i+1:])
			b.q[len(b.q)-1] = nil
			b.q = b.q[:len(b.q)-1]
		}
		b.compactLocked()
		return d, true
	}
	return nil, false
}

func (b *Inbox) compactLocked() {
	if b.head == len(b.q) {
		b.q = b.q[:0]
		b.head = 0
		return
	}
	if b.head > 64 && b.head*2 > len(b.q) {
		n := copy(b.q, b.q[b.head:])
		clear(b.q[n:])
		b.q = b.q[:n]
		b.head = 0
	}
}

// Wait blocks until a message for handle is available, the timeout passes
// (ErrTimeout), ctx ends (ErrCancelled) or the inbox is closed (ErrClosed).
func (b *Inbox) Wait(ctx context.Context, handle uint64, timeout time.Duration) (*Delivery, error) {
	if d, ok := b.Poll(handle); ok {
		return d, nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-b.signal:
			if d, ok := b.Poll(handle); ok {
				// Another message may be waiting for a different handle's
				// receiver; pass the signal on.
				if b.Len() > 0 {
					b.notify()
				}
				return d, nil
			}
		case <-timer.C:
			if d, ok := b.Poll(handle); ok {
				return d, nil
			}
			return nil, ErrTimeout
		case <-ctx.Done():
			return nil, ErrCancelled
		}
	}
}

// RemoveHandle drops every queued message of handle (used when a
// subscription is closed) and returns how many were removed.
func (b *Inbox) RemoveHandle(handle uint64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.q[:b.head]
	n := 0
	for i := b.head; i < len(b.q); i++ {
		if b.q[i].Handle == handle {
			n++
			continue
		}
		kept = append(kept, b.q[i])
	}
	clear(b.q[len(kept):])
	b.q = kept
	b.compactLocked()
	return n
}

// Close wakes every waiter with ErrClosed and refuses further pushes.
// Queued messages stay readable through Drain.
func (b *Inbox) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.notify()
}

// Reopen accepts pushes again after Close (used when a new incarnation
// takes over the same inbox).
func (b *Inbox) Reopen() {
	b.mu.Lock()
	b.closed = false
	b.mu.Unlock()
}

// Drain removes and returns every queued message in order.
func (b *Inbox) Drain() []*Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Delivery, b.lenLocked())
	copy(out, b.q[b.head:])
	clear(b.q)
	b.q = b.q[:0]
	b.head = 0
	return out
}

// PushFront puts d back at the head of the queue, ahead of everything
// queued: the message a crashed incarnation was handling is redelivered
// first to the next one. It ignores the capacity and a closed inbox (the
// message was already accepted once).
func (b *Inbox) PushFront(d *Delivery) {
	b.mu.Lock()
	if b.head > 0 {
		b.head--
		b.q[b.head] = d
	} else {
		b.q = append(b.q, nil)
		copy(b.q[1:], b.q)
		b.q[0] = d
	}
	b.mu.Unlock()
	b.notify()
}

// Pause holds every message: Poll and Wait see an empty inbox until
// Resume, while pushes keep queueing (a dependency is restarting).
func (b *Inbox) Pause() {
	b.mu.Lock()
	b.paused = true
	b.mu.Unlock()
}

// Resume ends a Pause and wakes a waiting receiver.
func (b *Inbox) Resume() {
	b.mu.Lock()
	b.paused = false
	b.mu.Unlock()
	b.notify()
}
