// Command neverready is a test guest: a run loop that subscribes to
// neverready.v1.in and waits on Recv forever without ever calling
// SignalReady. It returns nil when the host stops it.
package main

import (
	"errors"
	"time"

	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop"
)

func init() {
	sdk.Run(func() error {
		sub, err := sdk.Subscribe("neverready.v1.in")
		if err != nil {
			return err
		}
		for {
			_, err := sub.Recv(time.Minute)
			switch {
			case err == nil, errors.Is(err, sdk.ErrTimeout):
			case errors.Is(err, sdk.ErrCancelled), errors.Is(err, sdk.ErrClosed):
				return nil
			default:
				return err
			}
		}
	})
}

func main() {}
