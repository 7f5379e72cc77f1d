package actors

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
)

// queueBehindHeldCall holds the probe capsule on topic in one call, then
// sends payloads[i] as principal p<i> with replies to in, and waits until
// the router has queued all of them in the capsule's mailbox, so that they
// are all behind the held call when the gate opens.
func queueBehindHeldCall(t *testing.T, h *harness, tag, topic string, in *inbox, payloads []string) {
	t.Helper()
	h.send(topic, `{"trail":["held"],"hold":true}`, in)
	h.waitSeen(tag, 1)
	for i, p := range payloads {
		if err := h.client.Publish(&bus.Message{Topic: topic, Payload: []byte(p), Principal: fmt.Sprintf("p%d", i), Reply: in.subject}); err != nil {
			t.Fatal(err)
		}
	}
	mb := h.router.snap.Load().literal[topic][0].mb
	deadline := time.Now().Add(waitFor)
	for mb.Len() < len(payloads) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages queued behind the held call", mb.Len(), len(payloads))
		}
		<-time.After(time.Millisecond) // poll interval: the router's queueing has no event to wait on
	}
}

// replies collects n replies from in, keyed by the first trail entry of
// their body (errors by the order they came in, as "error#k").
func replies(t *testing.T, in *inbox, n int) map[string]*nats.Msg {
	t.Helper()
	out := map[string]*nats.Msg{}
	deadline := time.After(waitFor)
	for errs := 0; len(out) < n; {
		select {
		case m := <-in.ch:
			var body struct{ Trail []string }
			if _, e := replyOf(m); e == "" && json.Unmarshal(m.Data, &body) == nil && len(body.Trail) > 0 {
				if _, dup := out[body.Trail[0]]; dup {
					t.Fatalf("two replies for %s", body.Trail[0])
				}
				out[body.Trail[0]] = m
				continue
			}
			out[fmt.Sprintf("error#%d", errs)] = m
			errs++
		case <-deadline:
			t.Fatalf("%d of %d replies arrived", len(out), n)
		}
	}
	return out
}

// Messages queued behind a call join it (one guest entry for the run), and
// each keeps its own invocation context: its principal, its payload and
// its reply.
func TestBatchedMessagesKeepTheirOwnContext(t *testing.T) {
	h := newHarness(t)
	pid := h.spawn(probeSpec{name: "bq", mode: "final", bindings: []binding{{topic: "bq.v1.x"}}})
	in := h.inbox()
	const n = 20
	payloads := make([]string, n)
	for i := range payloads {
		payloads[i] = fmt.Sprintf(`{"trail":["m%d"]}`, i)
	}
	queueBehindHeldCall(t, h, "bq", "bq.v1.x", in, payloads)
	h.gate()

	got := replies(t, in, n+1)
	for i := range n {
		key := fmt.Sprintf("m%d", i)
		m, ok := got[key]
		if !ok {
			t.Fatalf("no reply for %s; got %v", key, keys(got))
		}
		if want := fmt.Sprintf(`{"trail":["%s","bq"]}`, key); string(m.Data) != want {
			t.Errorf("reply for %s = %s, want %s", key, m.Data, want)
		}
	}
	h.waitSeen("bq", n+1)
	for _, m := range h.seen.Snapshot() {
		var s struct {
			Tag, Principal string
			Trail          []string
		}
		if json.Unmarshal(m.Payload, &s) != nil || s.Tag != "bq" || s.Trail[0] == "held" {
			continue
		}
		if want := "p" + strings.TrimPrefix(s.Trail[0], "m"); s.Principal != want {
			t.Errorf("%s ran as principal %q, want %q", s.Trail[0], s.Principal, want)
		}
	}
	st := status(t, h, pid)
	if st.Batched != n {
		t.Errorf("%d messages joined the held call, want all %d queued behind it", st.Batched, n)
	}
	if st.Incarnation != 1 {
		t.Errorf("incarnation %d, want 1", st.Incarnation)
	}
}

// A trap in the middle of a batched call costs only the message that
// trapped: those before it are answered, it is retried once on a fresh
// instance and then dead-lettered (the default on_crash = "retry"), and
// those after it run on the new instance. Every requester gets exactly one
// answer.
func TestBatchedCallTrapMidway(t *testing.T) {
	h := newHarness(t)
	pid := h.spawn(probeSpec{name: "bt", mode: "final", bindings: []binding{{topic: "bt.v1.x"}}})
	in := h.inbox()
	payloads := []string{
		`{"trail":["m0"]}`, `{"trail":["m1"]}`, `{"trail":["m2"],"trap":true}`, `{"trail":["m3"]}`, `{"trail":["m4"]}`,
	}
	queueBehindHeldCall(t, h, "bt", "bt.v1.x", in, payloads)
	h.gate()

	got := replies(t, in, len(payloads)+1)
	if want := `{"trail":["held","bt"],"hold":true}`; got["held"] == nil || string(got["held"].Data) != want {
		t.Errorf("reply for the held call = %v, want %s", got["held"], want)
	}
	for _, key := range []string{"m0", "m1", "m3", "m4"} {
		if want := fmt.Sprintf(`{"trail":["%s","bt"]}`, key); got[key] == nil || string(got[key].Data) != want {
			t.Errorf("reply for %s = %v, want %s", key, got[key], want)
		}
	}
	_, code := replyOf(got["error#0"])
	if !strings.HasPrefix(code, "capsule-failed") {
		t.Errorf("the trapping message was answered with error %q, want capsule-failed", code)
	}
	select {
	case m := <-in.ch:
		t.Errorf("an extra reply: %s", m.Data)
	default:
	}
	// m2 ran twice (the retry); everything else once, in order.
	h.waitSeen("bt", 7)
	var order []string
	for _, m := range h.seen.Snapshot() {
		var s struct {
			Tag   string
			Trail []string
		}
		if json.Unmarshal(m.Payload, &s) == nil && s.Tag == "bt" {
			order = append(order, s.Trail[0])
		}
	}
	if want := "held m0 m1 m2 m2 m3 m4"; strings.Join(order, " ") != want {
		t.Errorf("calls ran in order %q, want %q", strings.Join(order, " "), want)
	}
	if st := status(t, h, pid); st.Incarnation < 2 {
		t.Errorf("incarnation %d after a trap, want a new one", st.Incarnation)
	}
}

func status(t *testing.T, h *harness, pid *actor.PID) *StatusReport {
	t.Helper()
	res, err := h.system.Root.RequestFuture(pid, &Status{}, waitFor).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*StatusReport)
}

func keys(m map[string]*nats.Msg) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
