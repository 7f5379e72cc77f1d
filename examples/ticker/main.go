// Command ticker is an example run-loop capsule: it subscribes to
// ticker.v1.in, signals ready, and publishes the payload of every message it
// receives on ticker.v1.out. It ends normally when the host stops it.
//
// Build it as a WASI reactor (see README.md); main never runs.
package main

import (
	"errors"
	"time"

	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop" // links the run export: this is a run-loop capsule
)

func init() {
	sdk.Run(run)
}

func run() error {
	sub, err := sdk.Subscribe("ticker.v1.in")
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
			return nil // the host is stopping the capsule: a normal end
		case err != nil:
			return err
		}
		if err := sdk.Publish("ticker.v1.out", env.Payload); err != nil {
			sdk.Warnf("ticker: publish ticker.v1.out: %v", err)
		}
	}
}

func main() {}
