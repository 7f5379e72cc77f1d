// Command exit is a test guest: a run loop that signals ready and returns
// nil at once, a normal end of the incarnation.
package main

import (
	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop"
)

func init() {
	sdk.Run(func() error { return sdk.SignalReady() })
}

func main() {}
