// Command crashon_loop is a test guest: a run loop that subscribes to
// crashon.v1.in, signals ready, and for every message panics when the
// payload is a JSON object with "crash":true, and otherwise answers the
// sender (ReplyTo) with the payload unchanged. It returns nil when the host
// stops it.
package main

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop"
)

func init() {
	sdk.Run(run)
}

func run() error {
	sub, err := sdk.Subscribe("crashon.v1.in")
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
		var p struct {
			Crash bool `json:"crash"`
		}
		if json.Unmarshal(env.Payload, &p) == nil && p.Crash {
			panic("crashon_loop guest: crash requested")
		}
		if env.HasReply {
			if err := sdk.ReplyTo(env.Payload); err != nil {
				sdk.Warnf("crashon_loop: reply: %v", err)
			}
		}
	}
}

func main() {}
