package bench

import (
	"context"
	"testing"

	"github.com/astrid-go/astrid/capsule/capsuletest"
)

// TestPaths runs every benchmark path once with a small count on one node,
// so a plain go test proves each path counts every message, gets every
// reply and loses nothing; the benchmarks run the same functions with b.N.
func TestPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests and starts a node")
	}
	e := startNode(t, sinkCapsule(t), srcCapsule(t), retryCapsule(t), capsuleDirEcho(t), crashonCapsule(t))
	rawResponder(t, e, "bench.v1.rawecho")
	_, wasm := capsuletest.Build(t, sinkGuest)
	rt := newRawRuntime(t, wasm, rawHostFor(t, e))
	mod, err := e.node.Engine().Compile(context.Background(), wasm, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Small chunks, so the chunking of the looping rows is exercised too.
	small := func(op hostOp) hostOp { op.chunk = 7; return op }
	dirs := idleCapsules(t, 3)
	e.load(dirs...)
	rawResponders(t, e, len(dirs))
	echoTopic := func(i int) string { return idleTopic(i) + ".echo" }
	rawEchoTopic := func(i int) string { return "bench.v1.rawscale." + idleTopic(i) + ".echo" }
	tests := []struct {
		name string
		n    int
		path func(r *run)
	}{
		{"ipc/raw-nats", 500, func(r *run) { ipcRawNATS(r, e) }},
		{"ipc/astrid", 500, func(r *run) { ipcAstrid(r, e) }},
		{"latency/raw-nats", 20, func(r *run) { latency(r, e, "bench.v1.rawecho") }},
		{"latency/astrid", 20, func(r *run) { latency(r, e, "echo.v1.request") }},
		{"c2c/raw-nats", 500, func(r *run) { c2cRawNATS(r, e) }},
		{"c2c/astrid", 500, func(r *run) { c2cAstrid(r, e, false) }},
		{"c2c/astrid-one-principal", 100, func(r *run) { c2cAstrid(r, e, true) }},
		{"hostcall/clock/raw-wazero", 20, func(r *run) { hostCallRaw(r, rt, small(opClock)) }},
		{"hostcall/clock/astrid", 20, func(r *run) { hostCallAstrid(r, e, small(opClock)) }},
		{"hostcall/publish/raw-wazero", 20, func(r *run) { hostCallRaw(r, rt, small(opPublish)) }},
		{"hostcall/publish/astrid", 20, func(r *run) { hostCallAstrid(r, e, small(opPublish)) }},
		{"hostcall/kvget/raw-wazero", 20, func(r *run) { hostCallRaw(r, rt, small(opKVGet)) }},
		{"hostcall/kvget/astrid", 20, func(r *run) { hostCallAstrid(r, e, small(opKVGet)) }},
		{"kv/put/raw-jetstream", 20, func(r *run) { kvRaw(r, rawHostFor(t, e).kv, false) }},
		{"kv/get/raw-jetstream", 20, func(r *run) { kvRaw(r, rawHostFor(t, e).kv, true) }},
		{"kv/put/astrid", 20, func(r *run) { hostCallAstrid(r, e, small(opKVSet)) }},
		{"restart/instantiate/raw-wazero", 2, func(r *run) { instantiateRaw(r, rt) }},
		{"restart/instantiate/astrid", 2, func(r *run) { instantiateAstrid(r, mod) }},
		{"restart/trap-to-ready/raw-wazero", 2, func(r *run) { trapRaw(r, rt) }},
		{"restart/trap-to-ready/astrid", 5, func(r *run) { trapAstrid(r, e, "bench.v1") }},
		{"restart/trap-to-ready/astrid-retry", 5, func(r *run) { trapAstrid(r, e, "bench.v1.retry") }},
		{"boot/raw-wazero", 1, func(r *run) { bootRaw(r, wasm, len(dirs), 2) }},
		{"boot/astrid", 1, func(r *run) { bootAstrid(r, dirs, installedDataDir(t, dirs)) }},
		{"boot/astrid-first-install", 1, func(r *run) { bootAstrid(r, dirs, "") }},
		{"memory/raw-wazero", 1, func(r *run) { memRaw(r, wasm, 10) }},
		{"memory/astrid", 1, func(r *run) { memAstrid(r, wasm, dirs) }},
		{"scaling/throughput/raw-nats", 31, func(r *run) { scaleThroughputRaw(r, e, len(dirs)) }},
		{"scaling/throughput/astrid", 31, func(r *run) { scaleThroughputAstrid(r, e, len(dirs)) }},
		{"scaling/latency/raw-nats", 7, func(r *run) { scaleLatency(r, e, len(dirs), rawEchoTopic) }},
		{"scaling/latency/astrid", 7, func(r *run) { scaleLatency(r, e, len(dirs), echoTopic) }},
		{"loss/astrid", 40, func(r *run) {
			res := lossAstrid(r, e, 10, 4)
			if res.lost.Load() != 0 || res.collateral.Load() != 0 || res.failed.Load() != 4 || res.ok.Load() != 36 {
				t.Errorf("loss row: ok %d, failed %d, collateral %d, lost %d; want 36, 4, 0, 0",
					res.ok.Load(), res.failed.Load(), res.collateral.Load(), res.lost.Load())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRun(t, tt.n)
			tt.path(r)
			if r.elapsed <= 0 {
				t.Errorf("%s measured no time", tt.name)
			}
			if r.lat != nil && len(r.lat) != tt.n {
				t.Errorf("%s: %d latency samples for %d ops", tt.name, len(r.lat), tt.n)
			}
		})
	}
}
