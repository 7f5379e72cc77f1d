// Command counter is an example interceptor capsule: it keeps a counter per
// principal, increments it on every message on counter.v1.increment, answers
// {"count":N} and announces {"principal":"...","count":N} on
// counter.v1.changed.
//
// The host scopes KV keys to the invoking principal, so the single key
// "count" holds a separate counter for every principal.
//
// Build it as a WASI reactor (see README.md); main never runs.
package main

import (
	"errors"

	"github.com/astrid-go/astrid/sdk"
)

type reply struct {
	Count int64 `json:"count"`
}

type changed struct {
	Principal string `json:"principal"`
	Count     int64  `json:"count"`
}

func init() {
	sdk.Handle("increment", increment)
}

func increment(c *sdk.Call) sdk.Result {
	var n int64
	if err := sdk.KVGetJSON("count", &n); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return sdk.Fail(err)
	}
	n++
	if err := sdk.KVSetJSON("count", n); err != nil {
		return sdk.Fail(err)
	}
	caller, err := c.Caller()
	if err != nil {
		sdk.Warnf("counter: caller: %v", err)
	}
	if err := sdk.PublishJSON("counter.v1.changed", changed{Principal: caller.Principal, Count: n}); err != nil {
		sdk.Warnf("counter: publish counter.v1.changed: %v", err)
	}
	return sdk.Reply(reply{Count: n})
}

func main() {}
