package actors

import (
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// How a fan-out level ends (chain.finishLevel): members a and b share
// priority 10, c has priority 20 and answers Final when it runs. Each case
// runs twice: completions in index order, and with a held on the gate so
// that b completes first; the outcome must not depend on completion order.
// Exactly one reply reaches the requester in every case.
func TestChainFanOutLevelOutcome(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       string // modes
		wantBody   string
		wantErr    string
		wantCCalls int
	}{
		{"both final: the first in order answers", "final", "final", `{"trail":["a"]}`, "", 0},
		{"deny first in order wins over final", "deny", "final", "", "denied: a", 0},
		{"final first in order wins over deny", "final", "deny", `{"trail":["a"]}`, "", 0},
		{"deny stops the chain", "continue", "deny", "", "denied: b", 0},
		{"both continue: the last member's data goes on", "continue", "continue", `{"trail":["b","c"]}`, "", 1},
		{"pass does not override a continue", "continue", "pass", `{"trail":["a","c"]}`, "", 1},
		{"an error beside a final", "fail", "final", `{"trail":["b"]}`, "", 0},
		{"an error beside a continue", "fail", "continue", `{"trail":["b","c"]}`, "", 1},
		{"both fail: the chain goes on with the original payload", "fail", "fail", `{"trail":["c"]}`, "", 1},
		{"a member that replied suppresses the chain's answer", "reply", "final", `{"trail":["a"]}`, "", 0},
		{"so does one after the final member", "final", "reply", `{"trail":["b"]}`, "", 0},
		{"a reply at level one suppresses the last level's answer", "reply", "continue", `{"trail":["a"]}`, "", 1},
	} {
		for _, held := range []bool{false, true} {
			name := tc.name
			if held {
				name += ", b completes first"
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t)
				a := h.spawn(probeSpec{name: "a", mode: tc.a, hold: held, bindings: []binding{{topic: "fan.v1.x", priority: 10}}})
				b := h.spawn(probeSpec{name: "b", mode: tc.b, bindings: []binding{{topic: "fan.v1.x", priority: 10}}})
				c := h.spawn(probeSpec{name: "c", mode: "final", bindings: []binding{{topic: "fan.v1.x", priority: 20}}})
				in := h.inbox()
				h.send("fan.v1.x", `{"trail":[]}`, in)
				// Both Invokes of the first level are queued once both
				// members announced their calls: settle can start.
				h.waitSeen("a", 1)
				h.waitSeen("b", 1)
				if held {
					h.settle([]*actor.PID{b}) // b has completed; a is still held
					h.gate()
				}
				replies := h.settle([]*actor.PID{a, b, c}, in)
				if len(replies) != 1 {
					for _, m := range replies {
						body, e := replyOf(m)
						t.Logf("reply %s (error %q)", body, e)
					}
					t.Fatalf("%d replies, want 1", len(replies))
				}
				body, e := replyOf(replies[0])
				if tc.wantErr != "" {
					if e != tc.wantErr {
						t.Errorf("error %q (body %s), want %q", e, body, tc.wantErr)
					}
				} else if e != "" || body != tc.wantBody {
					t.Errorf("reply %s (error %q), want %s", body, e, tc.wantBody)
				}
				if n := h.seenBy("c"); n != tc.wantCCalls {
					t.Errorf("the next level ran %d times, want %d", n, tc.wantCCalls)
				}
			})
		}
	}
}

// When every handler of the chain fails, the requester gets a typed error
// with the code of the last error of the last level, in (capsule, action)
// order: a guest error is handler-error, a trap capsule-failed.
func TestChainAllMembersErroring(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []probeSpec // name, mode, priority via bindings
		wantErr string      // prefix of Astrid-Error
	}{
		{"one failing binding", []probeSpec{{name: "a", mode: "fail"}}, "handler-error: probe a failed"},
		{"fan-out, trap last", []probeSpec{{name: "a", mode: "fail"}, {name: "b", mode: "trap"}}, "capsule-failed: capsule b failed: trap"},
		{"fan-out, guest error last", []probeSpec{{name: "a", mode: "trap"}, {name: "b", mode: "fail"}}, "handler-error: probe b failed"},
		{"two levels, guest error last", []probeSpec{{name: "b", mode: "trap"}, {name: "a", mode: "fail"}}, "handler-error: probe a failed"},
		{"two levels, trap last", []probeSpec{{name: "b", mode: "fail"}, {name: "a", mode: "trap"}}, "capsule-failed: capsule a failed: trap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			// Same priority for a fan-out; in the two-level cases the
			// first listed member comes first.
			twoLevels := strings.HasPrefix(tc.name, "two levels")
			var pids []*actor.PID
			for i, s := range tc.members {
				prio := 10
				if twoLevels {
					prio = 10 * (i + 1)
				}
				s.bindings = []binding{{topic: "err.v1.x", priority: prio}}
				pids = append(pids, h.spawn(s))
			}
			in := h.inbox()
			h.send("err.v1.x", `{"trail":[]}`, in)
			h.waitSeen(tc.members[0].name, 1) // the first level is queued
			if !twoLevels && len(tc.members) > 1 {
				h.waitSeen(tc.members[1].name, 1)
			}
			replies := h.settle(pids, in)
			if len(replies) != 1 {
				t.Fatalf("%d replies, want 1", len(replies))
			}
			if body, e := replyOf(replies[0]); !strings.HasPrefix(e, tc.wantErr) {
				t.Errorf("error %q (body %s), want prefix %q", e, body, tc.wantErr)
			}
			for _, s := range tc.members {
				if n := h.seenBy(s.name); n < 1 {
					t.Errorf("%s never ran", s.name)
				}
			}
		})
	}
}
