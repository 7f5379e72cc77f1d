package bench

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"

	"github.com/astrid-go/astrid/actors"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/hoststate"
)

// countFeed is a capsule.Batch handing the sink guest's count action the
// same payload n times.
type countFeed struct{ n int }

func (f *countFeed) Next(context.Context, capsule.Result, int) (string, []byte, bool) {
	if f.n == 0 {
		return "", nil, false
	}
	f.n--
	return "count", pad, true
}

// BenchmarkGuestCall is not a row of the table: it explains rows 1
// to 3. It measures entering the sink guest's count handler with a 256-byte
// payload, nothing else (no NATS, no actor):
//
//   - raw-wazero: one export call per message on a default wazero runtime;
//   - raw-wazero-terminating: the same with WithCloseOnContextDone(true),
//     which wazero needs to stop a guest at a deadline: it compiles a call
//     into Go at every loop header of the guest and starts a watcher
//     goroutine per export call;
//   - astrid-invoke: capsule.Instance.Invoke (astrid_hook_trigger), one
//     call per message, as before batching;
//   - astrid-batch: capsule.Instance.InvokeBatch, every message handed over
//     through hook_next inside one call (a busy capsule's path).
func BenchmarkGuestCall(b *testing.B) {
	_, wasm := capsuletest.Build(b, sinkGuest)
	for _, tc := range []struct {
		name string
		cfg  wazero.RuntimeConfig
	}{
		{"raw-wazero", wazero.NewRuntimeConfigCompiler()},
		{"raw-wazero-terminating", wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rt, err := openRawRuntimeConfig(wasm, nil, tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer rt.close()
			in, err := rt.instantiate()
			if err != nil {
				b.Fatal(err)
			}
			defer in.close()
			b.ResetTimer()
			for range b.N {
				if _, err := in.trigger("count", pad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	e := startNode(b)
	eng, err := capsule.NewEngine(capsule.EngineConfig{CacheDir: cacheDir, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(context.Background())
	mod, err := eng.Compile(context.Background(), wasm, 0)
	if err != nil {
		b.Fatal(err)
	}
	instance := func(b *testing.B) *capsule.Instance {
		st := hoststate.New(context.Background(), hoststate.Config{CapsuleID: "sink"}, actors.NewTransport(e.node.Conn()),
			nil, hoststate.NewInbox(16), zerolog.Nop())
		in, err := mod.Instantiate(st, capsule.InstanceConfig{CallTimeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(in.Close)
		return in
	}
	b.Run("astrid-invoke", func(b *testing.B) {
		in := instance(b)
		b.ResetTimer()
		for range b.N {
			if _, err := in.Invoke("count", pad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("astrid-batch", func(b *testing.B) {
		in := instance(b)
		b.ResetTimer()
		if _, err := in.InvokeBatch("count", pad, &countFeed{n: b.N - 1}); err != nil {
			b.Fatal(err)
		}
	})
}
