package hoststate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
)

func del(h uint64, topic string) *Delivery {
	return &Delivery{Handle: h, Msg: &bus.Message{Topic: topic}}
}

func topics(ds []*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Msg.Topic
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInboxFIFOAndHandleFilter(t *testing.T) {
	b := NewInbox(16)
	for _, d := range []*Delivery{del(1, "a1"), del(2, "b1"), del(1, "a2"), del(2, "b2"), del(1, "a3")} {
		if !b.Push(d) {
			t.Fatalf("push %s refused", d.Msg.Topic)
		}
	}
	// Handle 2 only: its messages in order, the others keep their place.
	var got []string
	for {
		d, ok := b.Poll(2)
		if !ok {
			break
		}
		got = append(got, d.Msg.Topic)
	}
	if want := []string{"b1", "b2"}; !equal(got, want) {
		t.Fatalf("Poll(2) = %v, want %v", got, want)
	}
	if _, ok := b.Poll(7); ok {
		t.Fatal("Poll(7) found a message for an unused handle")
	}
	got = nil
	for {
		d, ok := b.Poll(0)
		if !ok {
			break
		}
		got = append(got, d.Msg.Topic)
	}
	if want := []string{"a1", "a2", "a3"}; !equal(got, want) {
		t.Fatalf("Poll(0) = %v, want %v", got, want)
	}
	if b.Len() != 0 {
		t.Fatalf("Len = %d after draining", b.Len())
	}
}

func TestInboxEvictsOldestWhenFull(t *testing.T) {
	b := NewInbox(3)
	for i, topic := range []string{"m1", "m2", "m3", "m4", "m5"} {
		ok := b.Push(del(1, topic))
		if want := i < 3; ok != want {
			t.Fatalf("Push(%s) = %v, want %v", topic, ok, want)
		}
	}
	if !b.Full() {
		t.Fatal("Full = false with 3 of 3")
	}
	if got := b.Dropped(); got != 2 {
		t.Fatalf("Dropped = %d, want 2", got)
	}
	if got, want := topics(b.Drain()), []string{"m3", "m4", "m5"}; !equal(got, want) {
		t.Fatalf("Drain = %v, want %v", got, want)
	}
	if NewInbox(0).cap != 1 {
		t.Fatal("NewInbox(0) must hold one message")
	}
}

// A full inbox that nobody reads must not grow: eviction compacts.
func TestInboxFullWithoutReaderStaysBounded(t *testing.T) {
	const capacity = 8
	b := NewInbox(capacity)
	for i := range 100_000 {
		b.Push(del(uint64(i%3+1), "x"))
	}
	if b.Len() != capacity {
		t.Fatalf("Len = %d, want %d", b.Len(), capacity)
	}
	b.mu.Lock()
	n, c := len(b.q), cap(b.q)
	b.mu.Unlock()
	if n > 2*capacity+130 || c > 4*(2*capacity+130) {
		t.Fatalf("backing slice len %d cap %d for %d queued messages", n, c, capacity)
	}
	if got := b.Dropped(); got != 100_000-capacity {
		t.Fatalf("Dropped = %d, want %d", got, 100_000-capacity)
	}
}

func TestInboxRemoveHandle(t *testing.T) {
	b := NewInbox(16)
	for _, d := range []*Delivery{del(1, "a1"), del(2, "b1"), del(1, "a2"), del(2, "b2")} {
		b.Push(d)
	}
	b.Poll(0) // a1: makes head non-zero
	if n := b.RemoveHandle(2); n != 2 {
		t.Fatalf("RemoveHandle(2) = %d, want 2", n)
	}
	if got, want := topics(b.Drain()), []string{"a2"}; !equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
}

func TestInboxCloseDrainReopen(t *testing.T) {
	b := NewInbox(4)
	b.Push(del(1, "m1"))
	b.Push(del(1, "m2"))
	b.Close()
	if b.Push(del(1, "late")) {
		t.Fatal("Push on a closed inbox succeeded")
	}
	if b.Dropped() != 1 {
		t.Fatalf("Dropped = %d, want 1 (refused push)", b.Dropped())
	}
	if got, want := topics(b.Drain()), []string{"m1", "m2"}; !equal(got, want) {
		t.Fatalf("Drain = %v, want %v", got, want)
	}
	if _, err := b.Wait(context.Background(), 0, time.Minute); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait on closed empty inbox = %v, want ErrClosed", err)
	}
	b.Reopen()
	if !b.Push(del(1, "m3")) {
		t.Fatal("Push after Reopen refused")
	}
	d, err := b.Wait(context.Background(), 0, time.Minute)
	if err != nil || d.Msg.Topic != "m3" {
		t.Fatalf("Wait after Reopen = %v, %v", d, err)
	}
}

func TestInboxWait(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		b := NewInbox(4)
		b.Push(del(1, "other-handle"))
		start := time.Now()
		_, err := b.Wait(context.Background(), 2, 30*time.Millisecond)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el < 30*time.Millisecond {
			t.Fatalf("returned after %v, before the timeout", el)
		}
		if b.Len() != 1 {
			t.Fatal("Wait(2) consumed a message of handle 1")
		}
	})
	t.Run("zero timeout is a poll", func(t *testing.T) {
		b := NewInbox(4)
		if _, err := b.Wait(context.Background(), 0, 0); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		b.Push(del(1, "m"))
		if d, err := b.Wait(context.Background(), 0, 0); err != nil || d.Msg.Topic != "m" {
			t.Fatalf("Wait = %v, %v", d, err)
		}
	})
	wake := []struct {
		name string
		act  func(b *Inbox, cancel context.CancelFunc)
		want error
	}{
		{"push", func(b *Inbox, _ context.CancelFunc) { b.Push(del(1, "m")) }, nil},
		{"cancel", func(_ *Inbox, cancel context.CancelFunc) { cancel() }, ErrCancelled},
		{"close", func(b *Inbox, _ context.CancelFunc) { b.Close() }, ErrClosed},
	}
	for _, tc := range wake {
		t.Run(tc.name, func(t *testing.T) {
			b := NewInbox(4)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type res struct {
				d   *Delivery
				err error
			}
			started := make(chan struct{})
			done := make(chan res, 1)
			go func() {
				close(started)
				d, err := b.Wait(ctx, 1, time.Minute)
				done <- res{d, err}
			}()
			<-started
			tc.act(b, cancel)
			select {
			case r := <-done:
				if tc.want == nil {
					if r.err != nil || r.d == nil || r.d.Msg.Topic != "m" {
						t.Fatalf("Wait = %v, %v; want the pushed message", r.d, r.err)
					}
				} else if !errors.Is(r.err, tc.want) {
					t.Fatalf("Wait err = %v, want %v", r.err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not wake up")
			}
		})
	}
	t.Run("other handle does not wake", func(t *testing.T) {
		b := NewInbox(8)
		done := make(chan *Delivery, 1)
		go func() {
			d, err := b.Wait(context.Background(), 2, time.Minute)
			if err != nil {
				t.Errorf("Wait: %v", err)
			}
			done <- d
		}()
		b.Push(del(1, "a"))
		b.Push(del(2, "b"))
		select {
		case d := <-done:
			if d == nil || d.Msg.Topic != "b" {
				t.Fatalf("Wait(2) = %v, want b", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wait(2) did not return")
		}
		if d, ok := b.Poll(1); !ok || d.Msg.Topic != "a" {
			t.Fatal("handle 1's message lost")
		}
	})
}

// TestInboxHammer pushes from many goroutines while one goroutine pops
// with Wait: every message arrives exactly once, in per-producer order,
// and with a small capacity received + dropped accounts for every push.
func TestInboxHammer(t *testing.T) {
	const producers, each = 8, 2000
	for _, capacity := range []int{producers * each, 64} {
		b := NewInbox(capacity)
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					b.Push(&Delivery{Handle: uint64(p + 1), Msg: &bus.Message{Seq: uint64(i)}})
				}
			}()
		}
		pushed := make(chan struct{})
		go func() { wg.Wait(); close(pushed) }()

		last := make([]int64, producers+1)
		for i := range last {
			last[i] = -1
		}
		received := 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for done := false; !done; {
			d, err := b.Wait(ctx, 0, 20*time.Millisecond)
			switch {
			case err == nil:
				if int64(d.Msg.Seq) <= last[d.Handle] {
					t.Fatalf("producer %d: seq %d after %d", d.Handle, d.Msg.Seq, last[d.Handle])
				}
				last[d.Handle] = int64(d.Msg.Seq)
				received++
			case errors.Is(err, ErrTimeout):
				select {
				case <-pushed:
					done = b.Len() == 0
				default:
				}
			default:
				t.Fatalf("Wait: %v", err)
			}
		}
		cancel()
		if uint64(received)+b.Dropped() != producers*each {
			t.Fatalf("cap %d: received %d + dropped %d != %d", capacity, received, b.Dropped(), producers*each)
		}
		if capacity == producers*each && b.Dropped() != 0 {
			t.Fatalf("dropped %d with room for everything", b.Dropped())
		}
	}
}
