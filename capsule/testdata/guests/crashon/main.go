// Command crashon is a test guest: action "handle" panics when the payload
// is a JSON object with "crash":true, and otherwise replies with the payload
// unchanged.
package main

import (
	"encoding/json"

	"github.com/astrid-go/astrid/sdk"
)

func init() {
	sdk.Handle("handle", func(c *sdk.Call) sdk.Result {
		var p struct {
			Crash bool `json:"crash"`
		}
		if json.Unmarshal(c.Payload(), &p) == nil && p.Crash {
			panic("crashon guest: crash requested")
		}
		return sdk.Final(c.Payload())
	})
}

func main() {}
