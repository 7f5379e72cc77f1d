package actors

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
)

// goid returns the current goroutine's id (from its stack header), to tell
// goroutines apart in tests.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseInt(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// The dispatcher tests run in synctest bubbles: synctest.Wait returns once
// every goroutine of the bubble is durably blocked, and synctest.Test fails
// if a goroutine of the bubble (the dispatcher's loop) is left blocked when
// the test function returns, which is how they prove no goroutine leaks.

// Every scheduled function runs on the one pinned goroutine, in order.
// The schedules follow protoactor's pattern: the next run is scheduled
// while the current one is still winding down (one queued at a time).
func TestDispatcherRunsInOrderOnOneGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newPinnedDispatcher()
		defer d.Stop()
		const n = 500
		var order []int // touched only by the loop goroutine
		var ids []int64
		started := make(chan struct{})
		queued := make(chan struct{})
		done := make(chan struct{})
		run := func(i int) func() {
			return func() {
				order = append(order, i)
				ids = append(ids, goid())
				if i == n-1 {
					close(done)
					return
				}
				started <- struct{}{}
				<-queued // the next one is queued while this one runs
			}
		}
		d.Schedule(run(0))
		for i := 1; i < n; i++ {
			<-started
			d.Schedule(run(i))
			queued <- struct{}{}
		}
		<-done
		for i, v := range order {
			if v != i {
				t.Fatalf("function %d ran at position %d", v, i)
			}
		}
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("functions ran on goroutines %d and %d", ids[0], id)
			}
		}
		if ids[0] == goid() {
			t.Fatal("functions ran on the scheduling goroutine")
		}
	})
}

// Schedules beyond protoactor's pattern (many queued at once) are never
// lost: when the slot is taken they run on their own goroutine.
func TestDispatcherBurstRunsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newPinnedDispatcher()
		defer d.Stop()
		const n = 500
		var ran sync.WaitGroup
		ran.Add(n)
		for range n {
			d.Schedule(ran.Done)
		}
		ran.Wait()
	})
}

// After Stop, a late Schedule (a system message of a stopped actor) still
// runs its function, on a goroutine of its own. Repeated: a select between
// a free slot of the work channel and the closed done channel would lose
// the function half of the time.
func TestDispatcherScheduleAfterStopRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for i := range 200 {
			d := newPinnedDispatcher()
			pinned := make(chan int64, 1)
			d.Schedule(func() { pinned <- goid() })
			loop := <-pinned
			d.Stop()
			ran := make(chan int64, 2)
			d.Schedule(func() { ran <- goid() })
			d.Schedule(func() { ran <- goid() })
			synctest.Wait()
			if len(ran) != 2 {
				t.Fatalf("round %d: %d of 2 functions scheduled after Stop ran", i, len(ran))
			}
			for range 2 {
				if id := <-ran; id == loop {
					t.Fatalf("round %d: a function scheduled after Stop ran on the stopped loop goroutine", i)
				}
			}
		}
	})
}

// A function queued before Stop still runs, even when Stop comes while the
// loop is busy.
func TestDispatcherQueuedBeforeStopRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for i := range 200 {
			d := newPinnedDispatcher()
			release := make(chan struct{})
			d.Schedule(func() { <-release })
			synctest.Wait() // the loop is inside the first function
			second := make(chan struct{})
			d.Schedule(func() { close(second) })
			d.Stop()
			close(release)
			synctest.Wait()
			select {
			case <-second:
			default:
				t.Fatalf("round %d: the function queued before Stop never ran", i)
			}
		}
	})
}

// Stop is idempotent, safe from many goroutines at once and from a
// function running on the loop itself (the actor stops its dispatcher
// while handling Stopped).
func TestDispatcherStopIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newPinnedDispatcher()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(d.Stop)
		}
		wg.Wait()
		d.Stop()

		d = newPinnedDispatcher()
		stopped := make(chan struct{})
		d.Schedule(func() {
			d.Stop()
			d.Stop()
			close(stopped)
		})
		<-stopped
		after := make(chan struct{})
		d.Schedule(func() { close(after) })
		<-after
	})
}
