//go:build !wasip1

package sdk_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/astrid-go/astrid/sdk"
)

// A handler-only capsule registers its handlers in init (main never runs);
// the action names are the handler values of its [subscribe] entries.
func ExampleHandle() {
	sdk.Handle("example.echo", func(c *sdk.Call) sdk.Result {
		return sdk.Final(c.Payload())
	})
	sdk.Handle("example.greet", func(c *sdk.Call) sdk.Result {
		var in struct{ Name string }
		if err := c.Decode(&in); err != nil {
			return sdk.Deny("want {\"Name\":...}")
		}
		return sdk.Reply(map[string]string{"greeting": "hello " + in.Name})
	})
	// Output:
}

// A run-loop capsule blank-imports sdk/runloop and registers its loop:
//
//	import _ "github.com/astrid-go/astrid/sdk/runloop"
//
//	func init() { sdk.Run(loop) }
func ExampleRun() {
	loop := func() error {
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
				return nil // stopping: a normal end
			case err != nil:
				return err
			}
			if err := sdk.Publish("ticker.v1.out", env.Payload); err != nil {
				sdk.Warnf("publish: %v", err)
			}
		}
	}
	_ = loop
	// Output:
}

func ExampleError() {
	var err error = &sdk.Error{Code: sdk.NotFound, Detail: `no key "count"`}
	fmt.Println(err)
	fmt.Println(errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrTimeout))
	// Output:
	// astrid: not-found: no key "count"
	// true false
}

// Outside a wasm host every host call fails with internal, which keeps
// capsules buildable and testable on the host.
func ExampleKVGet() {
	_, err := sdk.KVGet("count")
	fmt.Println(err)
	// Output: astrid: internal: sdk: not running inside an astrid host
}
