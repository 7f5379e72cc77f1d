// Command sink is the benchmark guest of package bench: one module whose
// handlers each exercise one path of the runtime as cheaply as the guest
// side allows, so a benchmark measures the host and the bus, not the guest.
//
// Handlers (the action names of the manifests bench generates; the
// Capsule.toml beside this file binds the two counting topics):
//
//   - count: counts a message. A payload starting {"f (the flush marker
//     {"flush":true}) instead publishes {"count":N} on bench.v1.done and
//     resets the count. Messages from one publisher arrive in order, so
//     the flush marker proves every message before it was handled.
//   - blast, blastwait: the payload is a decimal N; publish N 256-byte
//     messages on bench.v1.c2c. blast counts rate-limited publishes as
//     errors; blastwait sleeps 1 ms and retries them (the IPC budget of one
//     principal). The reply is {"sent":N,"errors":E,"waits":W}.
//   - flush: publishes the flush marker on bench.v1.c2c.
//   - clock, publish, kvset, kvget: the payload is a decimal N; make N calls
//     of sys_clock_ms, ipc_publish (256 B on bench.v1.void), kv_set (256 B)
//     or kv_get (of a key set once first). The reply is {"calls":N,"errors":E}.
//   - boom panics (the instance traps); ok replies "ok"; echo replies with
//     the payload.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sink.wasm .
package main

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/astrid-go/astrid/sdk"
)

var (
	count int64
	// pad is a 256-byte JSON object, the payload of every benchmark row.
	pad    = []byte(`{"pad":"` + strings.Repeat("x", 256-len(`{"pad":""}`)) + `"}`)
	flush  = []byte(`{"flush":true}`)
	resBuf = make([]byte, 0, 256)
)

func init() {
	sdk.Handle("count", countMsg)
	sdk.Handle("blast", blast)
	sdk.Handle("blastwait", blast)
	sdk.Handle("flush", func(*sdk.Call) sdk.Result {
		if err := sdk.Publish("bench.v1.c2c", flush); err != nil {
			return sdk.Fail(err)
		}
		return sdk.Final([]byte(`"flushed"`))
	})
	sdk.Handle("clock", loop(func() error { sdk.ClockMs(); return nil }))
	sdk.Handle("publish", loop(func() error { return sdk.Publish("bench.v1.void", pad) }))
	sdk.Handle("kvset", loop(func() error { return sdk.KVSet("bench", pad) }))
	sdk.Handle("kvget", func(c *sdk.Call) sdk.Result {
		if err := sdk.KVSet("bench", pad); err != nil {
			return sdk.Fail(err)
		}
		return loop(func() error { _, err := sdk.KVGet("bench"); return err })(c)
	})
	sdk.Handle("boom", func(*sdk.Call) sdk.Result { panic("sink: boom requested") })
	sdk.Handle("ok", func(*sdk.Call) sdk.Result { return sdk.Final([]byte(`"ok"`)) })
	sdk.Handle("echo", func(c *sdk.Call) sdk.Result { return sdk.Final(c.Payload()) })
}

func countMsg(c *sdk.Call) sdk.Result {
	p := c.Payload()
	if len(p) > 2 && p[0] == '{' && p[2] == 'f' {
		resBuf = strconv.AppendInt(append(resBuf[:0], `{"count":`...), count, 10)
		resBuf = append(resBuf, '}')
		count = 0
		if err := sdk.Publish("bench.v1.done", resBuf); err != nil {
			return sdk.Fail(err)
		}
		return sdk.Pass()
	}
	count++
	return sdk.Pass()
}

// parseN reads the leading decimal digits of p.
func parseN(p []byte) int {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// yieldEvery bounds how long a loop allocates without giving the guest GC
// a turn (perf-baseline pitfall 9).
const yieldEvery = 256

func loop(call func() error) func(*sdk.Call) sdk.Result {
	return func(c *sdk.Call) sdk.Result {
		n := parseN(c.Payload())
		var errs int
		var first error
		for i := range n {
			if err := call(); err != nil {
				errs++
				if first == nil {
					first = err
				}
			}
			if i%yieldEvery == yieldEvery-1 {
				runtime.Gosched()
			}
		}
		return reply("calls", n, errs, 0, first)
	}
}

func blast(c *sdk.Call) sdk.Result {
	n := parseN(c.Payload())
	wait := c.Action() == "blastwait"
	var errs, waits int
	var first error
	for i := 0; i < n; {
		err := sdk.Publish("bench.v1.c2c", pad)
		if wait && errors.Is(err, sdk.ErrRateLimited) {
			waits++
			if err := sdk.Sleep(time.Millisecond); err != nil {
				return sdk.Fail(err)
			}
			continue
		}
		if err != nil {
			errs++
			if first == nil {
				first = err
			}
		}
		if i%yieldEvery == yieldEvery-1 {
			runtime.Gosched()
		}
		i++
	}
	return reply("sent", n, errs, waits, first)
}

// reply builds {"<what>":N,"errors":E,"waits":W[,"first":"..."]}.
func reply(what string, n, errs, waits int, first error) sdk.Result {
	b := append(resBuf[:0], `{"`...)
	b = append(b, what...)
	b = append(b, `":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = strconv.AppendInt(append(b, `,"errors":`...), int64(errs), 10)
	b = strconv.AppendInt(append(b, `,"waits":`...), int64(waits), 10)
	if first != nil {
		b = strconv.AppendQuote(append(b, `,"first":`...), first.Error())
	}
	resBuf = append(b, '}')
	return sdk.Final(resBuf)
}

func main() {}
