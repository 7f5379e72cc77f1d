// Command link is a test guest for supervision tests: a run loop whose
// behaviour comes from its [env] config, so one binary can play every link
// of a dependency chain.
//
//	topic          subscribe to this topic (required)
//	ready_delay_ms sleep this long before signalling ready (default 0)
//
// For each message: {"crash":true} panics; otherwise the payload is answered
// (ReplyTo) when the sender asked for a reply, and counted in KV key "seen".
package main

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop"
)

func init() { sdk.Run(run) }

func run() error {
	topic, _, err := sdk.Config("topic")
	if err != nil {
		return err
	}
	sub, err := sdk.Subscribe(topic)
	if err != nil {
		return err
	}
	if v, ok, _ := sdk.Config("ready_delay_ms"); ok {
		ms, _ := strconv.Atoi(v)
		if err := sdk.Sleep(time.Duration(ms) * time.Millisecond); err != nil {
			return nil
		}
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
			panic("link guest: crash requested")
		}
		if env.HasReply {
			if err := sdk.ReplyTo(env.Payload); err != nil {
				sdk.Warnf("link: reply: %v", err)
			}
		}
	}
}

func main() {}
