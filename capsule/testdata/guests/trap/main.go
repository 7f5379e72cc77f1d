// Command trap is a test guest: action "boom" panics (the instance traps),
// action "ok" replies "ok".
package main

import "github.com/astrid-go/astrid/sdk"

func init() {
	sdk.Handle("boom", func(*sdk.Call) sdk.Result { panic("trap guest: boom") })
	sdk.Handle("ok", func(*sdk.Call) sdk.Result { return sdk.Reply("ok") })
}

func main() {}
