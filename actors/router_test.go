package actors

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/hoststate"
)

// A literal binding and a wildcard binding both dispatch, with strict
// matching: a trailing * is exactly one segment.
func TestRouterLiteralAndWildcardBindings(t *testing.T) {
	h := newHarness(t)
	h.spawn(probeSpec{name: "lit", mode: "final", bindings: []binding{{topic: "rt.v1.exact"}}})
	h.spawn(probeSpec{name: "wild", mode: "final", bindings: []binding{{topic: "rt.v1.any.*"}}})
	for _, tc := range []struct{ topic, want string }{
		{"rt.v1.exact", `{"trail":["lit"]}`},
		{"rt.v1.any.x", `{"trail":["wild"]}`},
		{"rt.v1.any.y", `{"trail":["wild"]}`},
	} {
		body, e := replyOf(h.request(tc.topic, `{"trail":[]}`))
		if e != "" || body != tc.want {
			t.Errorf("%s: reply %s (error %q), want %s", tc.topic, body, e, tc.want)
		}
	}
	h.noResponders("rt.v1.any.x.y")
	h.noResponders("rt.v1.exact.more")
}

// Overlapping patterns on one node (a literal a.b and a wildcard a.*) give
// the router two subscriptions that both match a.b. Every message is
// dispatched exactly once: each binding runs once and the requester gets
// one reply; none is lost.
func TestRouterOverlappingPatternsDispatchOnce(t *testing.T) {
	h := newHarness(t)
	lit := h.spawn(probeSpec{name: "ov-lit", bindings: []binding{{topic: "ov.v1.b", priority: 10}}})
	wild := h.spawn(probeSpec{name: "ov-wild", bindings: []binding{{topic: "ov.v1.*", priority: 10}}})
	const n = 40
	in := h.inbox()
	for i := range n {
		h.send("ov.v1.b", fmt.Sprintf(`{"trail":["%d"]}`, i), in)
	}
	// Only the wildcard serves ov.v1.c: it also proves the wildcard
	// subscription has delivered everything before it.
	h.send("ov.v1.c", `{"trail":["c"]}`, in)
	h.waitSeen("ov-wild", n+1)
	h.waitSeen("ov-lit", n)
	replies := h.settle([]*actor.PID{lit, wild}, in)
	if len(replies) != n+1 {
		t.Errorf("%d replies for %d requests", len(replies), n+1)
	}
	for _, m := range replies {
		if body, e := replyOf(m); e != "" {
			t.Errorf("error reply %q (%s)", e, body)
		}
	}
	if got := h.seenBy("ov-lit"); got != n {
		t.Errorf("literal binding ran %d times for %d messages", got, n)
	}
	if got := h.seenBy("ov-wild"); got != n+1 {
		t.Errorf("wildcard binding ran %d times for %d messages", got, n+1)
	}
}

// A second Add for the same capsule id replaces its routes (no fan-out to
// the old actor); stopping the actor that no longer owns them leaves the
// new routes in place; stopping the owner removes them and the
// subscriptions.
func TestRouterAddReplacesRemoveOnlyByOwner(t *testing.T) {
	h := newHarness(t)
	spec := probeSpec{name: "swap", mode: "final", bindings: []binding{{topic: "swap.v1.x"}}}
	spec.tag = "old"
	old := h.spawn(spec)
	if body, _ := replyOf(h.request("swap.v1.x", `{"trail":[]}`)); body != `{"trail":["old"]}` {
		t.Fatalf("before the second Add: %s", body)
	}
	spec.tag = "new"
	cur := h.spawn(spec)
	if body, _ := replyOf(h.request("swap.v1.x", `{"trail":[]}`)); body != `{"trail":["new"]}` {
		t.Fatalf("after the second Add: %s", body)
	}
	h.stop(old)
	if body, e := replyOf(h.request("swap.v1.x", `{"trail":[]}`)); body != `{"trail":["new"]}` {
		t.Fatalf("after the old actor stopped: reply %s (error %q), want the new actor's", body, e)
	}
	h.settle([]*actor.PID{cur})
	if n := h.seenBy("old"); n != 1 {
		t.Errorf("the replaced actor ran %d times, want 1 (before the second Add)", n)
	}
	h.stop(cur)
	h.noResponders("swap.v1.x")
}

// Router.Remove drops only the routes served by the given PID, and a
// replacing Add that drops a pattern also drops its subscription (a
// leftover queue subscription would swallow messages meant for another
// node).
func TestRouterRemoveByPIDAndStaleSubscriptions(t *testing.T) {
	h := newHarness(t)
	// Two actors to route to; their own bindings are on other topics.
	a := h.spawn(probeSpec{name: "ra", mode: "final", bindings: []binding{{topic: "ra.v1.own"}}})
	b := h.spawn(probeSpec{name: "rb", mode: "final", bindings: []binding{{topic: "rb.v1.own"}}})
	bind := func(topics ...string) []hoststate.Binding {
		var out []hoststate.Binding
		for i, tp := range topics {
			out = append(out, hoststate.Binding{HandleID: uint64(i + 1), Action: "probe", Topic: tp})
		}
		return out
	}
	// Each actor has its own intake: a Mailbox belongs to one actor.
	h.router.Add("shared", a, bind("sh.v1.x", "sh.v1.y"), NewMailbox(16, "reject"))
	if body, _ := replyOf(h.request("sh.v1.y", `{"trail":[]}`)); body != `{"trail":["ra"]}` {
		t.Fatalf("routed to a: %s", body)
	}
	// b takes over with only one of the two patterns.
	h.router.Add("shared", b, bind("sh.v1.x"), NewMailbox(16, "reject"))
	if body, _ := replyOf(h.request("sh.v1.x", `{"trail":[]}`)); body != `{"trail":["rb"]}` {
		t.Fatalf("routed to b: %s", body)
	}
	h.noResponders("sh.v1.y")
	h.router.Remove("shared", a) // stale owner: nothing happens
	if body, _ := replyOf(h.request("sh.v1.x", `{"trail":[]}`)); body != `{"trail":["rb"]}` {
		t.Fatalf("after Remove with a stale PID: %s", body)
	}
	h.router.Remove("shared", b)
	h.noResponders("sh.v1.x")
	// The actors' own routes are untouched.
	if body, _ := replyOf(h.request("ra.v1.own", `{"trail":[]}`)); body != `{"trail":["ra"]}` {
		t.Fatalf("a's own binding: %s", body)
	}
}

// A one-binding chain and multi-level chains answer requests; a fan-out
// level sees the original payload of its level and the chain continues
// with the last member's data in (capsule, action) order.
func TestRouterChainsAnswer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		specs []probeSpec
		want  string
	}{
		{"one binding", []probeSpec{{name: "one", mode: "final"}}, `{"trail":["one"]}`},
		{"one binding, continue answers", []probeSpec{{name: "one"}}, `{"trail":["one"]}`},
		{"two levels", []probeSpec{{name: "b"}, {name: "a", mode: "final"}}, `{"trail":["b","a"]}`},
		{"levels with fan-out", []probeSpec{
			{name: "l1"}, {name: "l2a"}, {name: "l2b"}, {name: "l3", mode: "final"},
		}, `{"trail":["l1","l2b","l3"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			prio := map[string]int{"b": 10, "a": 20, "l1": 10, "l2a": 20, "l2b": 20, "l3": 30}
			for _, s := range tc.specs {
				s.bindings = []binding{{topic: "ch.v1.x", priority: prio[s.name]}}
				h.spawn(s)
			}
			body, e := replyOf(h.request("ch.v1.x", `{"trail":[]}`))
			if e != "" || body != tc.want {
				t.Errorf("reply %s (error %q), want %s", body, e, tc.want)
			}
		})
	}
}

// profiles gives every principal the same quota profile.
type profiles hoststate.Profile

func (p profiles) Profile(string) hoststate.Profile { return hoststate.Profile(p) }

// The first chain level takes a mailbox slot in the NATS callback: a full
// "reject" mailbox answers at once with a typed backpressure error, a
// principal over max_in_flight_calls gets a typed quota error (and the
// quota is reported) while another principal still gets in, and "block"
// holds the callback until there is room, refusing nothing. The capsule is
// kept busy by a call held on the gate, so the mailbox state is known.
func TestRouterMailboxOverflow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limits    string
		inFlight  int
		third     string // principal of the third message
		wantThird string // its Astrid-Error prefix while the first is held; "" = answered after the gate
	}{
		{"reject when full", "mailbox_size = 1\noverflow = \"reject\"", 0, "alice", "backpressure: capsule q mailbox is full"},
		{"quota per principal", "mailbox_size = 8\noverflow = \"reject\"", 1, "alice", "quota: principal alice already has 1 messages queued at capsule q"},
		{"quota spares other principals", "mailbox_size = 8\noverflow = \"reject\"", 1, "bob", ""},
		{"block waits for room", "mailbox_size = 1\noverflow = \"block\"", 1, "alice", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var quotas []hoststate.QuotaEvent
			var mu sync.Mutex
			if tc.inFlight > 0 {
				h.router.SetTenancy(profiles{MaxInFlight: tc.inFlight}, func(e hoststate.QuotaEvent) {
					mu.Lock()
					quotas = append(quotas, e)
					mu.Unlock()
				})
			}
			q := h.spawn(probeSpec{name: "q", mode: "final", bindings: []binding{{topic: "q.v1.x"}}, extra: "[limits]\n" + tc.limits})
			in := h.inbox()
			send := func(principal, payload string) {
				if err := h.client.Publish(&bus.Message{Topic: "q.v1.x", Payload: []byte(payload), Principal: principal, Reply: in.subject}); err != nil {
					t.Fatal(err)
				}
			}
			send("alice", `{"trail":["1"],"hold":true}`)
			h.waitSeen("q", 1) // running: its slot is free again
			send("alice", `{"trail":["2"]}`)
			send(tc.third, `{"trail":["3"]}`)
			if tc.wantThird != "" {
				select {
				case m := <-in.ch:
					if body, e := replyOf(m); e != tc.wantThird {
						t.Fatalf("third message: error %q (body %s), want %q", e, body, tc.wantThird)
					}
				case <-time.After(waitFor):
					t.Fatal("the refused message was not answered while the capsule was busy")
				}
			}
			h.gate()
			want := 3
			if tc.wantThird != "" {
				want = 2
			}
			h.waitSeen("q", want) // every accepted message was dispatched
			replies := h.settle([]*actor.PID{q}, in)
			if len(replies) != want {
				t.Fatalf("%d replies after the gate, want %d", len(replies), want)
			}
			for _, m := range replies {
				if body, e := replyOf(m); e != "" {
					t.Errorf("error reply %q (%s)", e, body)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			wantQuota := strings.HasPrefix(tc.wantThird, "quota")
			if wantQuota != (len(quotas) == 1) || len(quotas) > 1 {
				t.Fatalf("quota events %+v", quotas)
			}
			if wantQuota {
				if e := quotas[0]; e != (hoststate.QuotaEvent{Capsule: "q", Principal: "alice", Quota: "max_in_flight_calls", Limit: 1}) {
					t.Errorf("quota event %+v", e)
				}
			}
		})
	}
}
