// Command spin is a test guest: action "spin" loops forever without ever
// yielding (only a deadline can stop it), action "ok" replies "ok".
package main

import "github.com/astrid-go/astrid/sdk"

// spins is global so the loop has an observable effect and is not optimised
// away.
var spins uint64

func init() {
	sdk.Handle("spin", func(*sdk.Call) sdk.Result {
		for {
			spins++
		}
	})
	sdk.Handle("ok", func(*sdk.Call) sdk.Result { return sdk.Reply("ok") })
}

func main() {}
