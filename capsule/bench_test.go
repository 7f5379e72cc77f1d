package capsule

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/hoststate"
)

// BenchmarkInvokeEcho is one host → guest → host round trip through
// Instance.Invoke with a 256-byte payload on examples/echo (the handler
// returns the payload as Final).
func BenchmarkInvokeEcho(b *testing.B) {
	e := newEnv(b)
	in := e.instance(b, compile(b, "examples/echo", 0), hoststate.Config{CapsuleID: "echo"}, 30*time.Second)
	payload := []byte(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		res, err := in.Invoke("echo", payload)
		if err != nil || res.Kind != Final || len(res.Data) != len(payload) {
			b.Fatalf("%v %s %d", err, res.Kind, len(res.Data))
		}
	}
}

// BenchmarkHostCall measures one guest → host call. "astrid" is
// astrid_v1.sys_clock_ms called from a hand-assembled wasm loop (the
// cheapest host function: the Instance lookup in the call context plus
// time.Now), reported per call; "loop" is the same loop without the call,
// to subtract. "abi-clock" is a whole Invoke of the abi guest's clock
// action (decode, one host call, JSON reply), for scale.
func BenchmarkHostCall(b *testing.B) {
	e := newEnv(b)
	const n = 10_000
	for _, tc := range []struct {
		name string
		call bool
	}{{"astrid", true}, {"loop", false}} {
		b.Run(tc.name, func(b *testing.B) {
			m, err := sharedEngine(b).Compile(context.Background(), hostLoopModule(ModuleName, "sys_clock_ms", tc.call), 0)
			if err != nil {
				b.Fatal(err)
			}
			st := hoststate.New(context.Background(), hoststate.Config{CapsuleID: "loop"}, transport{e.conn}, e.kv,
				hoststate.NewInbox(1), zerolog.Nop())
			in, err := m.Instantiate(st, InstanceConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close()
			loop := in.mod.ExportedFunction("loop")
			b.ReportAllocs()
			start := time.Now()
			calls := 0
			for b.Loop() {
				if _, err := loop.Call(in.ctx, n); err != nil {
					b.Fatal(err)
				}
				calls += n
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(calls), "ns/call")
		})
	}
	b.Run("abi-clock", func(b *testing.B) {
		in := e.instance(b, compile(b, abiGuest, 0), abiConfig(), 30*time.Second)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := in.Invoke("clock", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
