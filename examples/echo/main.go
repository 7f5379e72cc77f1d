// Command echo is an example interceptor capsule: it answers every request on
// echo.v1.request with the request payload unchanged.
//
// Build it as a WASI reactor (see README.md); main never runs.
package main

import "github.com/astrid-go/astrid/sdk"

func init() {
	// "echo" is the handler value of the [subscribe] entry in Capsule.toml.
	sdk.Handle("echo", func(c *sdk.Call) sdk.Result {
		return sdk.Final(c.Payload())
	})
}

func main() {}
