// Command probe is the test guest of package actors: handlers "probe" and
// "probe2" take a JSON object {"trail":[...],"hold":bool}, announce the call
// on probe.v1.seen as {"tag","action","trail"} (so tests count
// invocations), append the tag to trail and act by the [env] config:
//
//	tag   appended to trail, and the deny reason
//	mode  continue (default): Continue with the new payload
//	      final:  Final with the new payload
//	      deny:   Deny with reason tag
//	      fail:   Fail (an error: the chain continues)
//	      pass:   Pass (continue unchanged)
//	      trap:   panic (a guest trap)
//	      reply:  answer the requester itself with ipc_reply, then Continue
//	hold  "true": hold every call (as "hold":true in the payload)
//
// A payload with "trap":true panics after announcing the call, whatever
// the mode. The announcement also carries the invoking principal, as the
// host's invocation context reports it.
//
// A held call announces itself, then waits (up to 10 s) for a message on
// probe.v1.gate before it acts, so a test can keep the actor busy, or
// order completions, without sleeping.
package main

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/astrid-go/astrid/sdk"
)

func init() {
	sdk.Handle("probe", probe)
	sdk.Handle("probe2", probe)
}

func probe(c *sdk.Call) sdk.Result {
	tag, _, _ := sdk.Config("tag")
	mode, _, _ := sdk.Config("mode")
	hold, _, _ := sdk.Config("hold")
	var p struct {
		Trail []string `json:"trail"`
		Hold  bool     `json:"hold,omitempty"`
		Trap  bool     `json:"trap,omitempty"`
	}
	if err := json.Unmarshal(c.Payload(), &p); err != nil {
		return sdk.Fail(err)
	}
	held := p.Hold || hold == "true"
	var gate sdk.Subscription
	if held {
		// Subscribe before announcing the call: a gate message published
		// after the announcement cannot be missed.
		var err error
		if gate, err = sdk.Subscribe("probe.v1.gate"); err != nil {
			return sdk.Fail(err)
		}
	}
	caller, _ := c.Caller()
	seen, _ := json.Marshal(map[string]any{"tag": tag, "action": c.Action(), "trail": p.Trail, "principal": caller.Principal})
	if err := sdk.Publish("probe.v1.seen", seen); err != nil {
		return sdk.Fail(err)
	}
	if held {
		_, err := gate.Recv(10 * time.Second)
		_ = gate.Close()
		if err != nil {
			return sdk.Fail(err)
		}
	}
	if p.Trap {
		panic("probe " + tag + " trapped on request")
	}
	p.Trail = append(p.Trail, tag)
	out, _ := json.Marshal(p)
	switch mode {
	case "final":
		return sdk.Final(out)
	case "deny":
		return sdk.Deny(tag)
	case "fail":
		return sdk.Fail(errors.New("probe " + tag + " failed"))
	case "pass":
		return sdk.Pass()
	case "trap":
		panic("probe " + tag + " trapped")
	case "reply":
		if err := sdk.ReplyTo(out); err != nil {
			return sdk.Fail(err)
		}
		return sdk.Continue(out)
	default:
		return sdk.Continue(out)
	}
}

func main() {}
