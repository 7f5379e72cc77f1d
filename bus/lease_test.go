package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
)

func openLeases(t *testing.T, c *bus.Conn) *bus.Leases {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := bus.OpenLeases(ctx, c, bus.LeaseConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Every write is conditional on the revision the writer saw: of two
// writers at the same revision one wins, and a stale revision (a holder
// that lost its lease) is refused.
func TestLeaseFencing(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	l := openLeases(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	exp := time.Now().Add(time.Minute)

	if _, err := l.Get(ctx, "solo"); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Fatalf("Get of a fresh lease: %v, want ErrKeyNotFound", err)
	}
	a, err := l.Create(ctx, "solo", "node-a", exp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Create(ctx, "solo", "node-b", exp); !errors.Is(err, bus.ErrCASMismatch) {
		t.Fatalf("second Create: %v, want ErrCASMismatch", err)
	}
	got, err := l.Get(ctx, "solo")
	if err != nil || got.Holder != "node-a" || got.Revision != a.Revision || !got.Expires.Equal(exp) {
		t.Fatalf("Get = %+v, %v; want node-a at revision %d", got, err, a.Revision)
	}

	// node-a renews; node-b, which saw the first revision, is fenced out.
	a2, err := l.Update(ctx, "solo", "node-a", exp, a.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if a2.Revision <= a.Revision {
		t.Fatalf("renewal revision %d not above %d", a2.Revision, a.Revision)
	}
	if _, err := l.Update(ctx, "solo", "node-b", exp, a.Revision); !errors.Is(err, bus.ErrCASMismatch) {
		t.Fatalf("takeover at a stale revision: %v, want ErrCASMismatch", err)
	}
	// node-b takes over at the current revision; node-a's renewal then fails.
	b, err := l.Update(ctx, "solo", "node-b", exp, a2.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Update(ctx, "solo", "node-a", exp, a2.Revision); !errors.Is(err, bus.ErrCASMismatch) {
		t.Fatalf("renewal of a lost lease: %v, want ErrCASMismatch", err)
	}
	if err := l.Delete(ctx, "solo", a2.Revision); !errors.Is(err, bus.ErrCASMismatch) {
		t.Fatalf("release of a lost lease: %v, want ErrCASMismatch", err)
	}
	if err := l.Delete(ctx, "solo", b.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, "solo"); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Fatalf("Get after release: %v, want ErrKeyNotFound", err)
	}
	// A released lease can be created again.
	c, err := l.Create(ctx, "solo", "node-a", exp)
	if err != nil {
		t.Fatalf("Create after release: %v", err)
	}
	if c.Revision <= b.Revision {
		t.Fatalf("revision went back: %d after %d", c.Revision, b.Revision)
	}
}

// Concurrent takeovers at one revision: exactly one wins.
func TestLeaseOneWinner(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	l := openLeases(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	first, err := l.Create(ctx, "solo", "old", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := string(rune('a' + i))
			_, err := l.Update(ctx, "solo", who, time.Now().Add(time.Minute), first.Revision)
			switch {
			case err == nil:
				mu.Lock()
				wins = append(wins, who)
				mu.Unlock()
			case !errors.Is(err, bus.ErrCASMismatch):
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("winners: %v, want exactly one", wins)
	}
	got, err := l.Get(ctx, "solo")
	if err != nil || got.Holder != wins[0] {
		t.Fatalf("Get = %+v, %v; want %s", got, err, wins[0])
	}
}

// Watch delivers the current lease, then every change in order, deletes
// included.
func TestLeaseWatch(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	l := openLeases(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	first, err := l.Create(ctx, "solo", "node-a", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan bus.Lease, 16)
	stop, err := l.Watch(ctx, "solo", func(le bus.Lease) { got <- le })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	next := func() bus.Lease {
		t.Helper()
		select {
		case le := <-got:
			return le
		case <-time.After(5 * time.Second):
			t.Fatal("no watch event within 5s")
			return bus.Lease{}
		}
	}
	if le := next(); le.Holder != "node-a" || le.Revision != first.Revision || le.Deleted {
		t.Fatalf("initial: %+v", le)
	}
	b, err := l.Update(ctx, "solo", "node-b", time.Now().Add(time.Minute), first.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if le := next(); le.Holder != "node-b" || le.Revision != b.Revision {
		t.Fatalf("update: %+v", le)
	}
	if err := l.Delete(ctx, "solo", b.Revision); err != nil {
		t.Fatal(err)
	}
	if le := next(); !le.Deleted || le.Revision <= b.Revision {
		t.Fatalf("delete: %+v", le)
	}
	stop()
	stop() // idempotent
	if _, err := l.Watch(ctx, "", func(bus.Lease) {}); !errors.Is(err, bus.ErrInvalidKey) {
		t.Fatalf("Watch of an empty name: %v, want ErrInvalidKey", err)
	}
}
