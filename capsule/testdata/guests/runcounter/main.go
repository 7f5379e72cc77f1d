// Command runcounter is a test guest: a run loop that counts messages per
// principal, for loss-free delivery tests. It subscribes to runcounter.v1.*
// and signals ready. A message on runcounter.v1.inc increments the KV key
// "count" (scoped by the host to the message's principal); a message on
// runcounter.v1.get leaves it alone. Either way, a sender waiting for a reply
// gets {"count":N,"principal":"..."}. It returns nil when the host stops it.
package main

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop"
)

type reply struct {
	Count     int64  `json:"count"`
	Principal string `json:"principal"`
}

func init() {
	sdk.Run(run)
}

func run() error {
	sub, err := sdk.Subscribe("runcounter.v1.*")
	if err != nil {
		return err
	}
	if err := sdk.SignalReady(); err != nil {
		return err
	}
	for {
		env, err := sub.Recv(time.Minute)
		switch {
		case errors.Is(err, sdk.ErrTimeout):
			continue
		case errors.Is(err, sdk.ErrCancelled), errors.Is(err, sdk.ErrClosed):
			return nil
		case err != nil:
			return err
		}
		if err := handle(env); err != nil {
			return err // a KV failure loses counts: fail loudly
		}
	}
}

func handle(env sdk.Envelope) error {
	var n int64
	if err := sdk.KVGetJSON("count", &n); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return err
	}
	if env.Topic == "runcounter.v1.inc" {
		n++
		if err := sdk.KVSetJSON("count", n); err != nil {
			return err
		}
	}
	if !env.HasReply {
		return nil
	}
	b, err := json.Marshal(reply{Count: n, Principal: env.Principal})
	if err != nil {
		return err
	}
	if err := sdk.ReplyTo(b); err != nil {
		sdk.Warnf("runcounter: reply: %v", err)
	}
	return nil
}

func main() {}
