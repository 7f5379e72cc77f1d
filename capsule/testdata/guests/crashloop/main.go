// Command crashloop is a test guest: a run loop that panics right after it
// starts, so every incarnation traps.
package main

import (
	"github.com/astrid-go/astrid/sdk"
	_ "github.com/astrid-go/astrid/sdk/runloop"
)

func init() {
	sdk.Run(func() error { panic("crashloop guest: crash") })
}

func main() {}
