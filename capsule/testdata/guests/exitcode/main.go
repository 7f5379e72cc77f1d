// Command exitcode is a test guest: action "exit" calls os.Exit(3), which
// closes the module with exit code 3 (proc_exit); action "ok" replies "ok".
package main

import (
	"os"

	"github.com/astrid-go/astrid/sdk"
)

func init() {
	sdk.Handle("exit", func(*sdk.Call) sdk.Result {
		os.Exit(3)
		return sdk.Pass()
	})
	sdk.Handle("ok", func(*sdk.Call) sdk.Result { return sdk.Reply("ok") })
}

func main() {}
