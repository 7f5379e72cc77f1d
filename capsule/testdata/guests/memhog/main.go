// Command memhog is a test guest: action "grow" allocates 1 MiB blocks and
// keeps them until the guest runs out of memory (the instance traps when
// linear memory cannot grow past its cap); action "ok" replies "ok".
package main

import "github.com/astrid-go/astrid/sdk"

// kept holds every block so the GC cannot free it.
var kept [][]byte

func init() {
	sdk.Handle("grow", func(*sdk.Call) sdk.Result {
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // touch every page
			}
			kept = append(kept, b)
		}
	})
	sdk.Handle("ok", func(*sdk.Call) sdk.Result { return sdk.Reply("ok") })
}

func main() {}
