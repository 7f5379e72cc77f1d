package bustest

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
)

// Recorder collects the messages matching a pattern, seen by an outside
// subscriber, so tests can wait for events with a deadline instead of
// sleeping.
//
// # Concurrency
//
// Goroutine-safe.
type Recorder struct {
	mu   sync.Mutex
	msgs []bus.Message
	more chan struct{}
}

// Record subscribes c to pattern (route grammar) until the test ends. The
// subscription is flushed before Record returns, so nothing published
// afterwards is missed.
func Record(tb testing.TB, c *bus.Conn, pattern string) *Recorder {
	tb.Helper()
	r := &Recorder{more: make(chan struct{}, 1)}
	cancel, err := c.SubscribeMessages(c.Subjects().Route(pattern), func(m *bus.Message) {
		cp := *m
		cp.Payload = append([]byte(nil), m.Payload...)
		r.mu.Lock()
		r.msgs = append(r.msgs, cp)
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.NATS().Flush(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cancel)
	return r
}

// Snapshot returns the messages recorded so far, in arrival order.
func (r *Recorder) Snapshot() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Message(nil), r.msgs...)
}

// Count returns how many recorded messages have the topic.
func (r *Recorder) Count(topic string) int {
	n := 0
	for _, m := range r.Snapshot() {
		if m.Topic == topic {
			n++
		}
	}
	return n
}

// WaitFor blocks until ok holds for a recorded message (ok is evaluated
// again on every new message, so it may also look at other state) and
// returns that message; it fails the test after d, listing what arrived.
func (r *Recorder) WaitFor(tb testing.TB, d time.Duration, what string, ok func(bus.Message) bool) bus.Message {
	tb.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		for _, m := range r.Snapshot() {
			if ok(m) {
				return m
			}
		}
		select {
		case <-r.more:
		case <-deadline.C:
			var got []string
			for _, m := range r.Snapshot() {
				got = append(got, m.Topic+" "+string(m.Payload))
			}
			tb.Fatalf("timed out after %v waiting for %s; got:\n%s", d, what, strings.Join(got, "\n"))
			return bus.Message{}
		}
	}
}

// WaitCount waits until at least want messages arrived on topic and
// returns the body of the want-th.
func (r *Recorder) WaitCount(tb testing.TB, topic string, want int, d time.Duration) []byte {
	tb.Helper()
	r.WaitFor(tb, d, strconv.Itoa(want)+" messages on "+topic, func(bus.Message) bool { return r.Count(topic) >= want })
	seen := 0
	for _, m := range r.Snapshot() {
		if m.Topic == topic {
			if seen++; seen == want {
				return m.Payload
			}
		}
	}
	return nil
}
