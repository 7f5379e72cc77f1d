package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
)

// errorReply asserts that a request got a typed error reply whose
// Astrid-Error value starts with code, and returns the value.
func (n *node) errorReply(topic, payload, code string) string {
	n.t.Helper()
	resp := n.req(topic, payload, "")
	e := resp.Header.Get(bus.HeaderError)
	if !strings.HasPrefix(e, code) {
		n.t.Fatalf("request %s: Astrid-Error %q (body %s), want prefix %q", topic, e, resp.Data, code)
	}
	return e
}

func (n *node) okReply(topic, want string) {
	n.t.Helper()
	resp := n.req(topic, `{}`, "")
	if e := resp.Header.Get(bus.HeaderError); e != "" {
		n.t.Fatalf("request %s: error reply %q", topic, e)
	}
	if want != "" && !strings.Contains(string(resp.Data), want) {
		n.t.Fatalf("request %s: reply %s, want it to contain %s", topic, resp.Data, want)
	}
}

// A guest panic traps; the requester gets a typed error instead of a
// timeout, the failure is published with its kind, and the next message
// gets a fresh instance.
func TestIntegrationTrapFreshInstance(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/trap", ""))
	for i := range 3 {
		e := n.errorReply("trap.v1.boom", fmt.Sprintf(`{"attempt":%d}`, i), "capsule-failed")
		if !strings.Contains(e, "trap") {
			t.Errorf("attempt %d: error %q does not name the trap", i, e)
		}
		n.okReply("trap.v1.ok", "ok")
	}
	ev := n.event("trap", "failed", 5*time.Second)
	if ev.Kind != "trap" || ev.Directive != "resume" {
		t.Errorf("failed event kind=%q directive=%q, want trap/resume", ev.Kind, ev.Directive)
	}
}

func TestIntegrationDeadlineStopsRunawayHandler(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/spin", "[limits]\ncall_timeout = \"300ms\""))
	start := time.Now()
	e := n.errorReply("spin.v1.spin", `{}`, "capsule-failed")
	if !strings.Contains(e, "deadline") {
		t.Errorf("error %q does not say deadline", e)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a 300ms call timeout took %v to answer", el)
	}
	n.okReply("spin.v1.ok", "")
	if ev := n.event("spin", "failed", 5*time.Second); ev.Kind != "deadline" {
		t.Errorf("failed event kind %q, want deadline", ev.Kind)
	}
}

func TestIntegrationMemoryLimit(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/memhog", "[limits]\nmemory_pages = 256"))
	n.errorReply("memhog.v1.grow", `{}`, "capsule-failed")
	if ev := n.event("memhog", "failed", 5*time.Second); ev.Kind != "memory-limit" {
		t.Errorf("failed event kind %q (%s), want memory-limit", ev.Kind, ev.Reason)
	}
	n.okReply("memhog.v1.ok", "")
}

func TestIntegrationGuestExitCode(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/exitcode", ""))
	n.errorReply("exitcode.v1.exit", `{}`, "capsule-failed")
	ev := n.event("exitcode", "failed", 5*time.Second)
	if ev.Kind != "exit" || !strings.Contains(ev.Reason, "code 3") {
		t.Errorf("failed event kind=%q reason=%q, want exit with code 3", ev.Kind, ev.Reason)
	}
	n.okReply("exitcode.v1.ok", "")
}

// A handler capsule that crashes on every message is quarantined after
// max_restarts, and then answers with a typed "quarantined" error.
func TestIntegrationHandlerCrashLoopQuarantined(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/trap", "[supervision]\nmax_restarts = 2\nwithin = \"1m\""))
	for i := range 3 {
		// Distinct messages: each crash counts once toward the intensity.
		n.errorReply("trap.v1.boom", fmt.Sprintf(`{"n":%d}`, i), "capsule-failed")
	}
	ev := n.event("trap", "quarantined", 5*time.Second)
	if ev.Kind != "trap" {
		t.Errorf("quarantined event kind %q", ev.Kind)
	}
	n.errorReply("trap.v1.ok", `{}`, "quarantined")
	if v := n.metric("astrid_capsule_quarantines_total", "capsule", "trap"); v != 1 {
		t.Errorf("astrid_capsule_quarantines_total = %v", v)
	}
	if v := n.metric("astrid_capsule_state", "capsule", "trap", "state", "quarantined"); v != 1 {
		t.Errorf("astrid_capsule_state{quarantined} = %v", v)
	}
	if v := n.metric("astrid_deadletters_total", "capsule", "trap"); v != 3 {
		t.Errorf("astrid_deadletters_total = %v, want 3", v)
	}
	infos, err := n.Capsules(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].State != "quarantined" {
		t.Errorf("capsules = %+v, want trap quarantined", infos)
	}
}

// A run loop that crashes right after start is restarted with backoff and
// quarantined when it exceeds its intensity; the node stays up.
func TestIntegrationRunLoopCrashLoopQuarantined(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/crashloop",
		"[supervision]\nmax_restarts = 3\nwithin = \"1m\"\nbackoff_initial = \"10ms\"\nbackoff_max = \"40ms\""),
		capsuleDir(t, "examples/echo", ""))
	n.event("crashloop", "quarantined", 10*time.Second)
	if got := n.countEvents("crashloop", "restarted"); got != 3 {
		t.Errorf("%d restarted events, want 3", got)
	}
	var backoffs []float64
	for _, m := range n.events.Snapshot() {
		if m.Topic == "astrid.v1.capsule.crashloop.failed" && strings.Contains(string(m.Payload), `"directive":"restart"`) {
			backoffs = append(backoffs, 0)
		}
	}
	if len(backoffs) != 3 {
		t.Errorf("%d failed events with directive restart, want 3", len(backoffs))
	}
	// The neighbour is untouched.
	n.okReply("echo.v1.request", "")
}

// A run loop that returns is a normal end: transient capsules stay stopped.
func TestIntegrationRunLoopNormalEnd(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/exit", "[supervision]\nrestart = \"transient\""))
	n.event("exit", "stopped", 10*time.Second)
	if got := n.countEvents("exit", "restarted"); got != 0 {
		t.Errorf("transient capsule restarted %d times after a normal end", got)
	}
}

// The message being handled when a capsule crashes is retried once on a
// fresh instance, then dead-lettered with the reason; the same message sent
// again is parked at once instead of burning the restart budget.
func TestIntegrationPoisonMessageDeadLettered(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/trap", "[supervision]\nmax_restarts = 1\nwithin = \"1m\""))
	dead := record(t, n.client, "astrid.v1.deadletter")
	e := n.errorReply("trap.v1.boom", `{"poison":1}`, "capsule-failed")
	if !strings.Contains(e, "dead-lettered") {
		t.Errorf("first crash reply %q does not say dead-lettered", e)
	}
	for range 4 {
		n.errorReply("trap.v1.boom", `{"poison":1}`, "")
	}
	n.errorReply("trap.v1.boom", `{"poison":1}`, "dead-lettered")
	n.okReply("trap.v1.ok", "ok")
	m := dead.WaitFor(t, 5*time.Second, "dead letter", func(bus.Message) bool { return true })
	var dl struct {
		Capsule, Topic, Reason string
		Crashes                int
		Payload                json.RawMessage
	}
	if err := json.Unmarshal(m.Payload, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Capsule != "trap" || dl.Topic != "trap.v1.boom" || string(dl.Payload) != `{"poison":1}` || dl.Crashes != 2 {
		t.Errorf("dead letter %+v", dl)
	}
	infos, _ := n.Capsules(time.Second)
	if len(infos) != 1 || infos[0].State == "quarantined" {
		t.Errorf("a single poison message quarantined the capsule: %+v", infos)
	}
	if got := n.countEvents("trap", "quarantined"); got != 0 {
		t.Errorf("%d quarantined events", got)
	}
}

// A full mailbox is answered with a typed backpressure error at once, never
// silently dropped or left to time out.
func TestIntegrationMailboxOverflowAnswered(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/abi", "[limits]\nmailbox_size = 2\noverflow = \"reject\""))
	const total = 8
	type result struct {
		code string
		err  error
	}
	results := make(chan result, total)
	for i := range total {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := n.client.Request(ctx, &bus.Message{Topic: "abi.v1.call.sleep", Payload: fmt.Appendf(nil, `{"ms":300,"i":%d}`, i)})
			if err != nil {
				results <- result{err: err}
				return
			}
			results <- result{code: resp.Header.Get(bus.HeaderError)}
		}()
	}
	ok, refused := 0, 0
	for range total {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("request not answered: %v", r.err)
		case r.code == "":
			ok++
		case strings.HasPrefix(r.code, "backpressure"):
			refused++
		default:
			t.Errorf("unexpected error reply %q", r.code)
		}
	}
	if ok == 0 || refused == 0 || ok+refused != total {
		t.Errorf("ok=%d refused=%d of %d: want both, and every request answered", ok, refused, total)
	}
}
