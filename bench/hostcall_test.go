package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule/capsuletest"
)

// hostOp is one host function the host-call rows loop over inside the
// guest: each benchmark op is one host call, made by the sink guest in a
// loop of up to chunk calls per handler invocation, so the invocation's own
// cost (a request round trip for astrid, one export call for raw) is
// amortised to a few ns per call.
type hostOp struct {
	name   string // sub-benchmark
	action string // sink guest action
	topic  string // bench-src binding of the action
	chunk  int
	// fresh sends each chunk as a new principal: publishing ops stay
	// inside the per-principal IPC budget.
	fresh bool
}

var (
	opClock   = hostOp{"clock", "clock", "bench.v1.hc.clock", 1_000_000, false}
	opPublish = hostOp{"publish256", "publish", "bench.v1.hc.publish", 30000, true}
	opKVGet   = hostOp{"kvget", "kvget", "bench.v1.kv.get", 5000, false}
	opKVSet   = hostOp{"kvset", "kvset", "bench.v1.kv.set", 5000, false}
)

// hostCallAstrid runs r.n calls of op in the bench-src capsule.
func hostCallAstrid(r *run, e *env, op hostOp) {
	r.start()
	for left := r.n; left > 0; left -= op.chunk {
		k := min(left, op.chunk)
		p := ""
		if op.fresh {
			p = freshPrincipal()
		}
		rep := parseLoopReply(r.tb, e.request(r.tb, op.topic, []byte(strconv.Itoa(k)), p))
		if rep.Calls != k {
			r.tb.Fatalf("%s: guest made %d calls, want %d", op.name, rep.Calls, k)
		}
	}
	r.stop()
}

// hostCallRaw runs r.n calls of op in the same guest on a plain wazero
// runtime whose host functions do the least the call needs (rawHost).
func hostCallRaw(r *run, rt *rawRuntime, op hostOp) {
	in, err := rt.instantiate()
	if err != nil {
		r.tb.Fatal(err)
	}
	defer in.close()
	r.start()
	for left := r.n; left > 0; left -= op.chunk {
		k := min(left, op.chunk)
		res, err := in.trigger(op.action, []byte(strconv.Itoa(k)))
		if err != nil {
			r.tb.Fatalf("%s: %v", op.name, err)
		}
		if len(res) == 0 || res[0] != 0x01 {
			r.tb.Fatalf("%s: result %q is not final", op.name, res)
		}
		if rep := parseLoopReply(r.tb, res[1:]); rep.Calls != k {
			r.tb.Fatalf("%s: guest made %d calls, want %d", op.name, rep.Calls, k)
		}
	}
	r.stop()
}

// rawHostFor is a rawHost on the node's own connection and KV bucket, the
// ones the astrid host functions use.
func rawHostFor(tb testing.TB, e *env) *rawHost {
	kv, err := e.node.Conn().JetStream().KeyValue(context.Background(), bus.DefaultKVBucket)
	if err != nil {
		tb.Fatal(err)
	}
	return &rawHost{nc: e.node.Conn().NATS(), kv: kv}
}

// BenchmarkHostCall is row 4: a guest calling a host function in a loop,
// through astrid's host (astrid_v1 with its checks, rate limiter, stamping
// and KV namespacing) against the same guest on raw wazero with host
// functions doing only the call's essential work (read the bytes; publish
// them with nats.go; get the key from the same JetStream bucket).
// Target: at most 2x ns/op.
func BenchmarkHostCall(b *testing.B) {
	e := startNode(b, srcCapsule(b))
	_, wasm := capsuletest.Build(b, sinkGuest)
	rt := newRawRuntime(b, wasm, rawHostFor(b, e))
	for _, op := range []hostOp{opClock, opPublish, opKVGet} {
		b.Run(op.name+"/raw-wazero", func(b *testing.B) {
			r := benchRun(b)
			hostCallRaw(r, rt, op)
			r.report(false)
		})
		b.Run(op.name+"/astrid", func(b *testing.B) {
			r := benchRun(b)
			hostCallAstrid(r, e, op)
			r.report(false)
		})
	}
}

// ---- row 8: KV through host ----

// kvRaw runs r.n puts or gets of a 256-byte value with nats.go's JetStream
// KV on the node's connection and bucket, timing each.
func kvRaw(r *run, kv jetstream.KeyValue, get bool) {
	ctx := context.Background()
	if _, err := kv.Put(ctx, "raw.bench", pad); err != nil {
		r.tb.Fatal(err)
	}
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		var err error
		if get {
			_, err = kv.Get(ctx, "raw.bench")
		} else {
			_, err = kv.Put(ctx, "raw.bench", pad)
		}
		r.lat[i] = time.Since(t0)
		if err != nil {
			r.tb.Fatal(err)
		}
	}
	r.stop()
}

// BenchmarkKV is row 8: kv_set / kv_get of a 256-byte value called by a
// guest through astrid's host, against JetStream KV put/get from Go on the
// same connection and bucket. Target: at most 1.3x latency (ns/op; the raw
// side also reports its p50/p99).
func BenchmarkKV(b *testing.B) {
	e := startNode(b, srcCapsule(b))
	raw := rawHostFor(b, e)
	for _, get := range []bool{false, true} {
		name, op := "put", opKVSet
		if get {
			name, op = "get", opKVGet
		}
		b.Run(name+"/raw-jetstream", func(b *testing.B) {
			r := benchRun(b)
			kvRaw(r, raw.kv, get)
			r.report(false)
		})
		b.Run(name+"/astrid", func(b *testing.B) {
			r := benchRun(b)
			hostCallAstrid(r, e, op)
			r.report(false)
		})
	}
}
