// Package runloop links the run export into a capsule, making it a run-loop
// capsule. A capsule that registers a loop with sdk.Run blank-imports it:
//
//	import _ "github.com/astrid-go/astrid/sdk/runloop"
//
// The host tells run-loop capsules from interceptor-only capsules by the
// presence of the run export, and Go exports are static, so the export lives
// here rather than in package sdk: an interceptor-only capsule never links
// it. sdk.Run panics when this package is not linked, and the run export
// traps when it is linked but no loop was registered, so neither mistake
// passes silently.
//
// It may import package sdk and sdk/internal/loop.
//
// # Concurrency
//
// The run export is called once per instance by the host, on a goroutine the
// capsule's actor owns.
//
// # Errors
//
// A run loop returning nil ends the incarnation normally. A non-nil error is
// logged at error level and then traps the instance with a panic, as does a
// panic inside the loop, so the supervisor sees a failure.
package runloop

import (
	"github.com/astrid-go/astrid/sdk"
	"github.com/astrid-go/astrid/sdk/internal/loop"
)

func init() { loop.Exported = true }

// errNoLoop is the panic value of a run export without a registered loop.
const errNoLoop = "sdk/runloop: the run export is linked but no run loop is registered: call sdk.Run in init"

// runMain runs the registered loop; see the package comment for its
// outcomes.
func runMain() {
	if loop.Fn == nil {
		sdk.Log(sdk.LevelError, errNoLoop)
		panic(errNoLoop)
	}
	if err := loop.Fn(); err != nil {
		msg := "sdk: run loop failed: " + err.Error()
		sdk.Log(sdk.LevelError, msg)
		panic(msg)
	}
}
