package capsule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/hoststate"
)

// sliceFeed is a Batch over a fixed list of messages; it records the
// results Next received and the room it was offered.
type sliceFeed struct {
	action  string
	queue   []string
	results []Result
	rooms   []int
}

func (f *sliceFeed) Next(_ context.Context, res Result, room int) (string, []byte, bool) {
	f.results = append(f.results, res)
	f.rooms = append(f.rooms, room)
	if len(f.queue) == 0 || len(f.action)+len(f.queue[0]) > room {
		return "", nil, false
	}
	next := f.queue[0]
	f.queue = f.queue[1:]
	return f.action, []byte(next), true
}

func TestCapsuleInvokeBatch(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, compile(t, "examples/echo", 0), hoststate.Config{CapsuleID: "echo"}, 5*time.Second)
	if !in.HasBatch() {
		t.Fatal("an SDK guest must export astrid_hook_batch")
	}
	big := `{"big":"` + strings.Repeat("x", 8192) + `"}`
	feed := &sliceFeed{action: "echo", queue: []string{`{"n":1}`, `{"n":2}`, big, `{"n":4}`}}
	res, err := in.InvokeBatch("echo", []byte(`{"n":0}`), feed)
	if err != nil {
		t.Fatal(err)
	}
	// Every result went through hook_next; the message larger than the
	// exchange buffer ended the batch and is still queued for a call of
	// its own.
	var got []string
	for _, r := range feed.results {
		got = append(got, r.Kind.String()+" "+string(r.Data))
	}
	if want := `final {"n":0}|final {"n":1}|final {"n":2}`; strings.Join(got, "|") != want {
		t.Errorf("results handed over = %q, want %q", strings.Join(got, "|"), want)
	}
	if res.Kind != Continue || res.Data != nil {
		t.Errorf("call result = %s %s, want none (every result was handed over)", res.Kind, res.Data)
	}
	if len(feed.queue) != 2 || feed.queue[0] != big {
		t.Errorf("still queued: %d messages, want the oversized one and the one after it", len(feed.queue))
	}
	for _, room := range feed.rooms {
		if room < len("echo")+len(`{"n":1}`) || room >= len(big) {
			t.Errorf("Pending was offered room %d: want the exchange buffer's size", room)
		}
	}
	// The next call handles the oversized message (the buffer grows) and
	// takes the rest.
	second := &sliceFeed{action: "echo", queue: feed.queue[1:]}
	if _, err = in.InvokeBatch("echo", []byte(feed.queue[0]), second); err != nil {
		t.Fatal(err)
	}
	if len(second.results) != 2 || string(second.results[1].Data) != `{"n":4}` {
		t.Fatalf("second batch results: %+v", second.results)
	}
}

// A trap in the middle of a batch fails the call; the messages handed over
// before it stay completed and the ones after it stay queued.
func TestCapsuleInvokeBatchTrap(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, compile(t, "capsule/testdata/guests/crashon", 0), hoststate.Config{CapsuleID: "crashon"}, 5*time.Second)
	feed := &sliceFeed{action: "handle", queue: []string{`{"n":1}`, `{"crash":true}`, `{"n":3}`}}
	_, err := in.InvokeBatch("handle", []byte(`{"n":0}`), feed)
	wantTrap(t, err, FailTrap)
	if len(feed.results) != 2 {
		t.Errorf("%d results handed over before the trap, want 2 (n:0 and n:1)", len(feed.results))
	}
	if len(feed.queue) != 1 || feed.queue[0] != `{"n":3}` {
		t.Errorf("still queued %q, want the message after the trap", feed.queue)
	}
	if !in.Dead() {
		t.Error("the instance survived a trap")
	}
}

// The per-call deadline applies to each message of a batch: a message that
// spins after joining a batch is stopped like one called on its own.
func TestCapsuleInvokeBatchDeadline(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, compile(t, "capsule/testdata/guests/spin", 0), hoststate.Config{CapsuleID: "spin"}, 300*time.Millisecond)
	feed := &sliceFeed{action: "spin", queue: []string{`{}`}}
	start := time.Now()
	_, err := in.InvokeBatch("ok", []byte(`{}`), feed)
	wantTrap(t, err, FailDeadline)
	if len(feed.results) != 1 || feed.results[0].Kind != Final {
		t.Errorf("results before the spinning message: %+v", feed.results)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the spinning message was stopped after %v", d)
	}
}
