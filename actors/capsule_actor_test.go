package actors

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/astrid-go/astrid/capsule/capsuletest"
)

// pinnedLoops counts the live pinned dispatcher goroutines.
func pinnedLoops(t *testing.T) int {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatal(err)
	}
	return bytes.Count(buf.Bytes(), []byte("actors.(*pinnedDispatcher).loop"))
}

// waitLoops waits until n pinned dispatcher goroutines are live.
func waitLoops(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for pinnedLoops(t) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d pinned dispatcher goroutines, want %d", pinnedLoops(t), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a goroutine count: no event to wait on
	}
}

// Every capsule actor runs on its own pinned goroutine, which ends when the
// actor stops.
func TestCapsuleActorStopEndsPinnedGoroutine(t *testing.T) {
	h := newHarness(t)
	base := pinnedLoops(t)
	var pids []*actor.PID
	for _, name := range []string{"p1", "p2", "p3"} {
		pids = append(pids, h.spawn(probeSpec{name: name, mode: "final", bindings: []binding{{topic: name + ".v1.x"}}}))
	}
	waitLoops(t, base+3)
	for _, pid := range pids {
		h.stop(pid)
	}
	waitLoops(t, base)
}

// A panic in our own actor code makes protoactor replace the actor value
// (Restarting, then Started on a fresh value). The old value's incarnation
// must end with it: a run loop left running would keep its subscriptions
// and answer beside the new one, and outlive the actor.
func TestCapsuleActorRestartAfterPanicEndsOldIncarnation(t *testing.T) {
	h := newHarness(t)
	const dir = "capsule/testdata/guests/crashon_loop"
	manifest, err := os.ReadFile(filepath.Join(capsuletest.RepoRoot(t), dir, "Capsule.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pid := h.spawnGuest(dir, string(manifest), nil)
	if body, _ := replyOf(h.request("crashon.v1.in", `{"n":1}`)); body != `{"n":1}` {
		t.Fatalf("reply %s", body)
	}
	from := h.events.len()
	h.system.Root.Send(pid, &Invoke{}) // no message: a nil dereference in Receive
	h.waitReady(from, "crashon-loop")
	in := h.inbox()
	h.send("crashon.v1.in", `{"n":2}`, in)
	select {
	case m := <-in.ch:
		if string(m.Data) != `{"n":2}` {
			t.Fatalf("reply %s", m.Data)
		}
	case <-time.After(waitFor):
		t.Fatal("no reply after the restart")
	}
	h.stop(pid)
	// Nothing of the actor is left to answer.
	h.noResponders("crashon.v1.in")
}
