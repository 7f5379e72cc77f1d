package actors

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// One step of a mailbox script: acquire (with wait and limit) or release
// for a principal, and what the mailbox looks like after it.
type mbStep struct {
	release   bool
	principal string
	wait      bool
	limit     int
	wantCode  string // for acquire
	wantLen   int
	wantHeld  int // slots held by principal afterwards
}

func TestMailboxAcquireRelease(t *testing.T) {
	acq := func(p string, limit int, code string, n, held int) mbStep {
		return mbStep{principal: p, limit: limit, wantCode: code, wantLen: n, wantHeld: held}
	}
	rel := func(p string, n, held int) mbStep {
		return mbStep{release: true, principal: p, wantLen: n, wantHeld: held}
	}
	for _, tc := range []struct {
		name   string
		size   int
		policy string
		steps  []mbStep
	}{
		{"reject: a full mailbox is backpressure", 2, "reject", []mbStep{
			acq("alice", 0, "", 1, 1),
			acq("bob", 0, "", 2, 1),
			acq("carol", 0, "backpressure", 2, 0),
			rel("alice", 1, 0),
			acq("carol", 0, "", 2, 1),
		}},
		{"the per-principal cap is quota, before the mailbox is full", 4, "reject", []mbStep{
			acq("alice", 2, "", 1, 1),
			acq("alice", 2, "", 2, 2),
			acq("alice", 2, "quota", 2, 2),
			acq("bob", 2, "", 3, 1),
			rel("alice", 2, 1),
			acq("alice", 2, "", 3, 2),
		}},
		{"quota is checked first: a principal at its cap gets quota even when full", 2, "reject", []mbStep{
			acq("alice", 2, "", 1, 1),
			acq("alice", 2, "", 2, 2),
			acq("alice", 2, "quota", 2, 2),
			acq("bob", 2, "backpressure", 2, 0),
		}},
		{"no limit means no cap", 3, "reject", []mbStep{
			acq("alice", 0, "", 1, 1),
			acq("alice", -1, "", 2, 2),
			acq("alice", 0, "", 3, 3),
			acq("alice", 0, "backpressure", 3, 3),
		}},
		{"drop_oldest behaves as reject for handler mailboxes", 1, "drop_oldest", []mbStep{
			acq("alice", 0, "", 1, 1),
			acq("bob", 0, "backpressure", 1, 0),
		}},
		{"block ignores the per-principal cap", 3, "block", []mbStep{
			acq("alice", 1, "", 1, 1),
			acq("alice", 1, "", 2, 2),
			acq("alice", 1, "", 3, 3),
		}},
		{"block without wait (a later chain level) is backpressure when full", 1, "block", []mbStep{
			acq("alice", 1, "", 1, 1),
			acq("alice", 1, "backpressure", 1, 1),
			rel("alice", 0, 0),
		}},
		{"a size below one holds one", 0, "reject", []mbStep{
			acq("alice", 0, "", 1, 1),
			acq("bob", 0, "backpressure", 1, 0),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mb := NewMailbox(tc.size, tc.policy)
			for i, s := range tc.steps {
				if s.release {
					mb.release(s.principal)
				} else if code := mb.acquire(s.wait, s.principal, s.limit); code != s.wantCode {
					t.Fatalf("step %d: acquire(%s) = %q, want %q", i, s.principal, code, s.wantCode)
				}
				if n := mb.Len(); n != s.wantLen {
					t.Fatalf("step %d: Len = %d, want %d", i, n, s.wantLen)
				}
				if n := mb.counter(s.principal).Load(); int(n) != s.wantHeld {
					t.Fatalf("step %d: %s holds %d, want %d", i, s.principal, n, s.wantHeld)
				}
			}
		})
	}
}

func TestMailboxNil(t *testing.T) {
	var mb *Mailbox
	if code := mb.acquire(true, "alice", 1); code != "" {
		t.Errorf("nil acquire = %q", code)
	}
	mb.release("alice")
	if mb.Len() != 0 {
		t.Errorf("nil Len = %d", mb.Len())
	}
}

// Under the block policy the acquiring goroutine (the NATS callback) waits
// for room, without a per-principal cap, and goes on exactly when a slot is
// released. synctest.Wait returns once every goroutine of the bubble is
// durably blocked, so "still blocked" is a fact, not a timing guess.
func TestMailboxBlockWaitsForRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mb := NewMailbox(2, "block")
		for range 2 {
			if code := mb.acquire(true, "alice", 1); code != "" {
				t.Fatalf("filling: %q", code)
			}
		}
		const waiters = 3
		done := make(chan string, waiters)
		for range waiters {
			go func() { done <- mb.acquire(true, "alice", 1) }()
		}
		synctest.Wait()
		if len(done) != 0 {
			t.Fatalf("%d acquires returned from a full block mailbox", len(done))
		}
		if n := mb.counter("alice").Load(); n != 2+waiters {
			t.Fatalf("alice counts %d, want %d (waiters count as in flight)", n, 2+waiters)
		}
		for i := 1; i <= waiters; i++ {
			mb.release("alice")
			synctest.Wait()
			if len(done) != i {
				t.Fatalf("after %d releases %d waiters went on, want %d", i, len(done), i)
			}
			if code := <-done; code != "" {
				t.Fatalf("blocked acquire returned %q", code)
			}
			done <- "" // keep the count
			if mb.Len() != 2 {
				t.Fatalf("Len = %d, want 2", mb.Len())
			}
		}
	})
}

// A blocked producer is woken at the low watermark (half the mailbox), not
// at every release.
func TestMailboxBlockWakesAtHalf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mb := NewMailbox(8, "block")
		for range 8 {
			if code := mb.acquire(true, "alice", 0); code != "" {
				t.Fatalf("filling: %q", code)
			}
		}
		done := make(chan string, 1)
		go func() { done <- mb.acquire(true, "bob", 0) }()
		synctest.Wait() // the producer is blocked on the full mailbox
		for i := 1; i <= 4; i++ {
			mb.release("alice")
			synctest.Wait()
			if i < 4 && len(done) != 0 {
				t.Fatalf("the producer went on after %d releases (Len %d), want it held until Len 4", i, mb.Len())
			}
		}
		if len(done) != 1 {
			t.Fatalf("the producer is still blocked at Len %d", mb.Len())
		}
		if code := <-done; code != "" || mb.Len() != 5 {
			t.Fatalf("acquire = %q, Len = %d; want a slot and Len 5", code, mb.Len())
		}
	})
}

// Many goroutines acquiring and releasing for a few principals never see
// more than size slots taken or a principal above its cap, and leave the
// mailbox empty.
func TestMailboxHammer(t *testing.T) {
	for _, tc := range []struct {
		policy string
		wait   bool
		limit  int
	}{
		{"reject", false, 3},
		{"reject", false, 0},
		{"block", true, 3}, // the cap is ignored: bounded by size only
	} {
		t.Run(fmt.Sprintf("%s/limit=%d", tc.policy, tc.limit), func(t *testing.T) {
			const size, workers, rounds = 8, 16, 2000
			principals := []string{"p0", "p1", "p2", "p3"}
			mb := NewMailbox(size, tc.policy)
			var held [4]atomic.Int32 // slots each principal holds, as the workers see it
			var ok, refused atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan string, workers)
			for w := range workers {
				wg.Go(func() {
					pi := w % len(principals)
					p := principals[pi]
					for range rounds {
						code := mb.acquire(tc.wait, p, tc.limit)
						switch code {
						case "":
							ok.Add(1)
							n := held[pi].Add(1)
							if tc.limit > 0 && tc.policy != "block" && int(n) > tc.limit {
								errs <- fmt.Sprintf("%s holds %d slots, cap %d", p, n, tc.limit)
								return
							}
							if l := mb.Len(); l > size {
								errs <- fmt.Sprintf("Len %d > size %d", l, size)
								return
							}
							runtime.Gosched() // hold the slot while others run
							held[pi].Add(-1)
							mb.release(p)
						case "quota", "backpressure":
							refused.Add(1)
						default:
							errs <- "unknown code " + code
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if mb.Len() != 0 {
				t.Errorf("Len = %d after every release", mb.Len())
			}
			for _, p := range principals {
				if n := mb.counter(p).Load(); n != 0 {
					t.Errorf("%s counter = %d after every release", p, n)
				}
			}
			if ok.Load() == 0 {
				t.Error("no acquire succeeded")
			}
			if tc.wait && refused.Load() != 0 {
				t.Errorf("%d blocking acquires were refused", refused.Load())
			}
			t.Logf("%d acquired, %d refused", ok.Load(), refused.Load())
		})
	}
}
