package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
)

func TestIntegrationEchoRequestReply(t *testing.T) {
	n := startNode(t, capsuleDir(t, "examples/echo", ""))
	for _, payload := range []string{`{"hi":1}`, `[1,2,3]`, `"text"`, `{"nested":{"a":[true,null]}}`} {
		resp := n.req("echo.v1.request", payload, "")
		if e := resp.Header.Get(bus.HeaderError); e != "" {
			t.Fatalf("error reply: %s", e)
		}
		if string(resp.Data) != payload {
			t.Errorf("echo %s: got %s", payload, resp.Data)
		}
	}
}

func TestIntegrationCounterSeparatePrincipals(t *testing.T) {
	n := startNode(t, capsuleDir(t, "examples/counter", ""))
	changes := record(t, n.client, "counter.v1.changed")
	inc := func(p string) float64 {
		t.Helper()
		out := n.call("counter.v1.increment", `{}`, p)
		v, ok := out["count"].(float64)
		if !ok {
			t.Fatalf("reply %v has no count", out)
		}
		return v
	}
	for i := 1; i <= 3; i++ {
		if got := inc("alice"); got != float64(i) {
			t.Fatalf("alice increment %d: count %v", i, got)
		}
	}
	if got := inc("bob"); got != 1 {
		t.Fatalf("bob's first increment: count %v, want 1 (alice's count leaked)", got)
	}
	if got := inc(""); got != 1 {
		t.Fatalf("default principal's first increment: count %v, want 1", got)
	}
	if got := inc("alice"); got != 4 {
		t.Fatalf("alice after bob: count %v, want 4", got)
	}
	// The capsule's publish carries the invoking principal, downstream.
	m := changes.WaitFor(t, 5*time.Second, "bob's change event", func(m bus.Message) bool {
		return strings.Contains(string(m.Payload), `"principal":"bob"`)
	})
	if m.Principal != "bob" || m.Attribution != bus.Claimed {
		t.Errorf("change event stamped principal=%q attribution=%v, want bob/claimed", m.Principal, m.Attribution)
	}
}

func TestIntegrationTickerRunLoop(t *testing.T) {
	n := startNode(t, capsuleDir(t, "examples/ticker", ""))
	n.event("ticker", "ready", 10*time.Second)
	out := record(t, n.client, "ticker.v1.out")
	for i := range 5 {
		if err := n.client.Publish(&bus.Message{Topic: "ticker.v1.in", Payload: fmt.Appendf(nil, `{"n":%d}`, i), Principal: "carol"}); err != nil {
			t.Fatal(err)
		}
	}
	out.WaitFor(t, 10*time.Second, "5 ticks", func(bus.Message) bool { return len(out.Snapshot()) >= 5 })
	for i, m := range out.Snapshot()[:5] {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(m.Payload) != want {
			t.Errorf("tick %d: %s, want %s (order or payload wrong)", i, m.Payload, want)
		}
		if m.Principal != "carol" {
			t.Errorf("tick %d principal %q, want carol", i, m.Principal)
		}
	}
}

// A capsule publishing outside its [publish] ACL gets capability-denied and
// nothing reaches the subject.
func TestIntegrationPublishOutsideACLDenied(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/abi", ""))
	all := record(t, n.client, "abi.v1.*")

	denied := n.call("abi.v1.call.publish", `{"topic":"abi.v1.forbidden.x","payload":{"leak":true}}`, "")
	if denied["ok"] != false || denied["err"] != "capability-denied" {
		t.Fatalf("publish outside ACL: %v, want capability-denied", denied)
	}
	ok := n.call("abi.v1.call.publish", `{"topic":"abi.v1.allowed.sentinel","payload":{"after":true}}`, "")
	if ok["ok"] != true {
		t.Fatalf("publish inside ACL: %v", ok)
	}
	// NATS keeps one connection's order: had the denied publish left the
	// node, it would arrive before the sentinel.
	all.WaitFor(t, 5*time.Second, "sentinel", func(m bus.Message) bool { return m.Topic == "abi.v1.allowed.sentinel" })
	for _, m := range all.Snapshot() {
		if strings.HasPrefix(m.Topic, "abi.v1.forbidden") {
			t.Fatalf("denied publish reached %s", m.Topic)
		}
	}

	for _, tc := range []struct{ name, body, want string }{
		{"not json", `{"topic":"abi.v1.allowed.x","raw":"{not json"}`, "invalid-input"},
		{"wildcard topic", `{"topic":"abi.v1.allowed.*","payload":{}}`, "invalid-input"},
		{"too long topic", `{"topic":"abi.v1.allowed.` + strings.Repeat("x", 300) + `","payload":{}}`, "too-large"},
		{"too many segments", `{"topic":"abi.v1.allowed.a.b.c.d.e.f","payload":{}}`, "invalid-input"},
	} {
		got := n.call("abi.v1.call.publish", tc.body, "")
		if got["err"] != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, got, tc.want)
		}
	}
}

// Guest-set Astrid-* headers cannot exist (the ABI has no header input) and
// a client forging a verified attribution is downgraded to claimed.
func TestIntegrationForgedAttributionIsClaimed(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/abi", ""))
	msg := &bus.Message{Topic: "abi.v1.call.caller", Payload: []byte(`{}`), Principal: "mallory"}
	ctx := t.Context()
	raw := n.client.NATS()
	nm := &nats.Msg{}
	bus.EncodeClaimed(nm, n.client.Subjects().Subject(msg.Topic), msg)
	nm.Header.Set(bus.HeaderEnvelope, "v2 verified - 1 0 local n1 "+strings.Repeat("A", 43))
	resp, err := raw.RequestMsgWithContext(ctx, nm)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Caller struct {
			Principal, Attribution string
		}
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		t.Fatalf("%s: %v", resp.Data, err)
	}
	if out.Caller.Principal != "mallory" || out.Caller.Attribution != "claimed" {
		t.Errorf("caller = %+v, want mallory/claimed", out.Caller)
	}
}
