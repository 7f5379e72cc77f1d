// Command hop is a test guest for interceptor chains: handler "hop" takes a
// JSON object {"trail":[...]} and acts by its [env] config:
//
//	tag   appended to trail
//	mode  continue (default): Continue with the new payload
//	      final:    Final with the new payload
//	      deny:     Deny with reason tag
//	      fail:     Fail (an error: the chain continues)
//	      pass:     Pass (continue unchanged)
package main

import (
	"encoding/json"
	"errors"

	"github.com/astrid-go/astrid/sdk"
)

func init() {
	sdk.Handle("hop", func(c *sdk.Call) sdk.Result {
		tag, _, _ := sdk.Config("tag")
		mode, _, _ := sdk.Config("mode")
		var p struct {
			Trail []string `json:"trail"`
		}
		if err := json.Unmarshal(c.Payload(), &p); err != nil {
			return sdk.Fail(err)
		}
		p.Trail = append(p.Trail, tag)
		out, _ := json.Marshal(p)
		switch mode {
		case "final":
			return sdk.Final(out)
		case "deny":
			return sdk.Deny(tag)
		case "fail":
			return sdk.Fail(errors.New("hop " + tag + " failed"))
		case "pass":
			return sdk.Pass()
		default:
			return sdk.Continue(out)
		}
	})
}

func main() {}
