package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/supervisor"
)

// cacheDir is the wazero compilation cache shared by every node and raw
// runtime of the test binary: "warm compile cache" in the rows.
var cacheDir string

// TestMain makes the compilation cache: a fresh temp dir, or the dir named
// by ASTRID_BENCH_CACHE, kept across runs (so a profiled run does not
// profile the first compile).
func TestMain(m *testing.M) {
	dir := os.Getenv("ASTRID_BENCH_CACHE")
	keep := dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "astrid-bench-cache-")
		if err != nil {
			panic(err)
		}
		dir = d
	}
	cacheDir = dir
	code := m.Run()
	if !keep {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

const (
	sinkGuest    = "bench/guests/sink"
	echoGuest    = "examples/echo"
	crashonGuest = "capsule/testdata/guests/crashon"
	// waitLong bounds every wait for a benchmark's completion signal; a
	// path that loses a message fails after it instead of hanging.
	waitLong = 2 * time.Minute
)

// pad is the 256-byte JSON payload of every row, the same bytes the sink
// guest publishes.
var pad = []byte(`{"pad":"` + strings.Repeat("x", 256-len(`{"pad":""}`)) + `"}`)

var flushMarker = []byte(`{"flush":true}`)

// principalSeq names fresh principals, so every chunk of a publishing row
// starts with an untouched IPC budget (10 MiB/s per capsule and principal).
var principalSeq atomic.Int64

func freshPrincipal() string { return "p" + strconv.FormatInt(principalSeq.Add(1), 10) }

// ---- measuring ----

// run is one measurement of n operations: a benchmark (b set) or a test
// run of a path with a small n.
type run struct {
	tb      testing.TB
	b       *testing.B
	n       int
	t0      time.Time
	elapsed time.Duration
	lat     []time.Duration
	metrics map[string]float64
}

func benchRun(b *testing.B) *run {
	b.ReportAllocs()
	return &run{tb: b, b: b, n: b.N, metrics: map[string]float64{}}
}

func testRun(t testing.TB, n int) *run { return &run{tb: t, n: n, metrics: map[string]float64{}} }

// pause resets the timer and leaves it stopped, for paths that time part
// of each op with resume and stop.
func (r *run) pause() {
	runtime.GC()
	if r.b != nil {
		r.b.ResetTimer()
		r.b.StopTimer()
	}
}

// start begins the timed region (setup before it is not measured).
func (r *run) start() {
	runtime.GC()
	if r.b != nil {
		r.b.ResetTimer()
		r.b.StartTimer()
	}
	r.t0 = time.Now()
}

// stop ends the timed region.
func (r *run) stop() {
	r.elapsed += time.Since(r.t0)
	if r.b != nil {
		r.b.StopTimer()
	}
}

// resume re-enters the timed region after stop.
func (r *run) resume() {
	if r.b != nil {
		r.b.StartTimer()
	}
	r.t0 = time.Now()
}

// report publishes msgs/s (when throughput is set), the latency
// percentiles (when samples were taken) and the extra metrics.
func (r *run) report(throughput bool) {
	if r.b == nil {
		return
	}
	if throughput && r.elapsed > 0 {
		r.b.ReportMetric(float64(r.n)/r.elapsed.Seconds(), "msgs/s")
	}
	if len(r.lat) > 0 {
		r.b.ReportMetric(us(percentile(r.lat, 50)), "p50-us")
		r.b.ReportMetric(us(percentile(r.lat, 99)), "p99-us")
	}
	for k, v := range r.metrics {
		r.b.ReportMetric(v, k)
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// percentile is the nearest-rank percentile p of samples (sorted in place).
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	i := int(float64(len(samples))*p/100+0.5) - 1
	return samples[min(max(i, 0), len(samples)-1)]
}

// ---- nodes and capsules ----

// env is a node on an embedded NATS server listening on a random loopback
// port, with an outside client connected over TCP the way the nats CLI
// would be.
type env struct {
	tb     testing.TB
	node   *supervisor.Node
	client *nats.Conn
	// done receives the payloads published on bench.v1.done.
	done chan []byte
}

// startNode starts a node with a fresh data dir and the shared compile
// cache, and loads dirs (none is fine). It is shut down when tb ends.
func startNode(tb testing.TB, dirs ...string) *env {
	tb.Helper()
	n, shutdown := bareNode(tb)
	tb.Cleanup(shutdown)
	nc, err := nats.Connect(n.ClientURL(), nats.Name("bench-client"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	e := &env{tb: tb, node: n, client: nc, done: make(chan []byte, 1024)}
	sub, err := nc.Subscribe("bench.v1.done", func(m *nats.Msg) { e.done <- m.Data })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	if len(dirs) > 0 {
		e.load(dirs...)
	}
	return e
}

// nodeLogger is silent unless BENCH_LOG names a level (warn, debug...):
// node logs go to stderr then, for diagnosing a failing benchmark.
func nodeLogger() zerolog.Logger {
	lvl, err := zerolog.ParseLevel(os.Getenv("BENCH_LOG"))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Nop()
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
}

// bareNode starts a node on a fresh data dir; the caller must call
// shutdown.
func bareNode(tb testing.TB) (*supervisor.Node, func()) {
	tb.Helper()
	return bareNodeAt(tb, tb.TempDir())
}

// bareNodeAt starts a node on dataDir (which may hold a previous node's
// state: its key, install records and JetStream store).
func bareNodeAt(tb testing.TB, dataDir string) (*supervisor.Node, func()) {
	tb.Helper()
	n, err := supervisor.Start(context.Background(), supervisor.Config{
		DataDir:    dataDir,
		NATSListen: "127.0.0.1:-1",
		NodeID:     "bench",
		CacheDir:   cacheDir,
		Logger:     nodeLogger(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	}
}

// loadAll loads capsule dirs into n and fails unless every capsule is
// loaded and ready.
func loadAll(tb testing.TB, n *supervisor.Node, dirs ...string) {
	tb.Helper()
	rep, err := n.Load(context.Background(), dirs...)
	if err != nil {
		tb.Fatal(err)
	}
	if len(rep.Failed) > 0 || len(rep.NotReady) > 0 || len(rep.Loaded) != len(dirs) {
		tb.Fatalf("load: %d of %d loaded; failed %v, not ready %v", len(rep.Loaded), len(dirs), rep.Failed, rep.NotReady)
	}
}

// load loads capsule dirs and fails unless every capsule is loaded and ready.
func (e *env) load(dirs ...string) {
	e.tb.Helper()
	loadAll(e.tb, e.node, dirs...)
}

// waitCount waits for the next {"count":N} on bench.v1.done.
func (e *env) waitCount(tb testing.TB) int {
	tb.Helper()
	select {
	case b := <-e.done:
		var v struct{ Count int }
		if err := json.Unmarshal(b, &v); err != nil {
			tb.Fatalf("done payload %q: %v", b, err)
		}
		return v.Count
	case <-time.After(waitLong):
		tb.Fatalf("no done message within %v", waitLong)
		return 0
	}
}

// request sends payload on topic as an outside client claiming principal
// ("" for none) and fails on a transport error or a typed error reply.
func (e *env) request(tb testing.TB, topic string, payload []byte, principal string) []byte {
	tb.Helper()
	m := nats.NewMsg(topic)
	m.Data = payload
	if principal != "" {
		m.Header.Set(bus.HeaderPrincipal, principal)
	}
	resp, err := e.client.RequestMsg(m, waitLong)
	if err != nil {
		tb.Fatalf("request %s: %v", topic, err)
	}
	if v := resp.Header.Get(bus.HeaderError); v != "" {
		tb.Fatalf("request %s: error reply %q", topic, v)
	}
	return resp.Data
}

// loopReply is the sink guest's reply to a looping handler.
type loopReply struct {
	Calls, Sent, Errors, Waits int
	First                      string
}

func parseLoopReply(tb testing.TB, b []byte) loopReply {
	tb.Helper()
	var r loopReply
	if err := json.Unmarshal(b, &r); err != nil {
		tb.Fatalf("guest reply %q: %v", b, err)
	}
	if r.Errors > 0 {
		tb.Fatalf("guest reports %d failed host calls; first: %s", r.Errors, r.First)
	}
	return r
}

// capsuleDir writes a capsule dir name under root holding manifest and a
// link to (or copy of) the wasm at wasmPath named file.
func capsuleDir(tb testing.TB, root, name, file, manifest, wasmPath string) string {
	tb.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(manifest), 0o644); err != nil {
		tb.Fatal(err)
	}
	dst := filepath.Join(dir, file)
	if err := os.Link(wasmPath, dst); err != nil {
		b, err := os.ReadFile(wasmPath)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// manifest renders a Capsule.toml for the sink guest: subscribe maps a
// topic to its handler action.
func manifest(name string, subscribe map[string]string, publish []string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = %q\nversion = \"0.1.0\"\n\n", name)
	fmt.Fprintf(&b, "[[component]]\nid = %q\nfile = \"sink.wasm\"\ntype = \"executable\"\n\n", name)
	if len(publish) > 0 {
		b.WriteString("[publish]\n")
		for _, p := range publish {
			fmt.Fprintf(&b, "%q = { wit = \"opaque\" }\n", p)
		}
		b.WriteString("\n")
	}
	b.WriteString("[subscribe]\n")
	topics := make([]string, 0, len(subscribe))
	for t := range subscribe {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		fmt.Fprintf(&b, "%q = { wit = \"opaque\", handler = %q }\n", t, subscribe[t])
	}
	// overflow = "block": an unthrottled publisher is slowed down through
	// NATS flow control instead of having messages refused (the default
	// "reject" answers them with a backpressure error, which a one-way
	// publisher never sees).
	// readiness_timeout: a node booting 1,000 capsules instantiates them all
	// at once on two cores; the default 5 s can pass before the last one is
	// scheduled (docs/benchmarks.md, scaling).
	b.WriteString("\n[limits]\ncall_timeout = \"5m\"\noverflow = \"block\"\n\n[supervision]\nmax_restarts = 1000000\nwithin = \"1s\"\nreadiness_timeout = \"2m\"\n")
	b.WriteString(extra)
	return b.String()
}

// srcCapsule is the manifest of bench-src, the sink guest with every
// driving handler bound.
func srcCapsule(tb testing.TB) string {
	tb.Helper()
	path, _ := capsuletest.Build(tb, sinkGuest)
	m := manifest("bench-src", map[string]string{
		"bench.v1.blast":      "blast",
		"bench.v1.blastwait":  "blastwait",
		"bench.v1.flush":      "flush",
		"bench.v1.hc.clock":   "clock",
		"bench.v1.hc.publish": "publish",
		"bench.v1.kv.set":     "kvset",
		"bench.v1.kv.get":     "kvget",
		"bench.v1.boom":       "boom",
		"bench.v1.ok":         "ok",
	}, []string{"bench.v1.c2c", "bench.v1.void"}, "on_crash = \"deadletter\"\n")
	return capsuleDir(tb, tb.TempDir(), "bench-src", "sink.wasm", m, path)
}

// retryCapsule binds boom and ok of the sink guest under the default
// on_crash = "retry": a message that crashes the handler is retried once
// on a fresh instance before it is dead-lettered.
func retryCapsule(tb testing.TB) string {
	tb.Helper()
	path, _ := capsuletest.Build(tb, sinkGuest)
	m := manifest("bench-retry", map[string]string{
		"bench.v1.retry.boom": "boom",
		"bench.v1.retry.ok":   "ok",
	}, nil, "")
	return capsuleDir(tb, tb.TempDir(), "bench-retry", "sink.wasm", m, path)
}

// sinkCapsule is bench/guests/sink with its own Capsule.toml: it counts
// bench.v1.sink and bench.v1.c2c and reports on bench.v1.done.
func sinkCapsule(tb testing.TB) string {
	tb.Helper()
	return capsuletest.CapsuleDir(tb, sinkGuest, "sink.wasm")
}

// idleTopic is the counting topic of idle capsule i; idleTopic(i)+".echo"
// is its echo topic.
func idleTopic(i int) string { return fmt.Sprintf("bench.v1.idle.%04d", i) }

// idleCapsules writes n capsule dirs of the sink guest, each with its own
// id, a counting topic and an echo topic, under one temp dir.
func idleCapsules(tb testing.TB, n int) []string {
	tb.Helper()
	path, _ := capsuletest.Build(tb, sinkGuest)
	root := tb.TempDir()
	dirs := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("bench-idle-%04d", i)
		m := manifest(name, map[string]string{idleTopic(i): "count", idleTopic(i) + ".echo": "echo"},
			[]string{"bench.v1.done"}, "")
		dirs[i] = capsuleDir(tb, root, name, "sink.wasm", m, path)
	}
	return dirs
}

// ---- raw wazero ----

// rawHost implements the astrid_v1 imports of a guest on a plain wazero
// runtime with the least work each call needs: the raw baseline of the
// host-call rows. Functions it does not implement return -internal.
type rawHost struct {
	nc *nats.Conn
	kv jetstream.KeyValue
}

const codeInternal, codeNotFound = 12, 8

func (h *rawHost) fn(name string) api.GoModuleFunc {
	read := func(m api.Module, ptr, n uint64) []byte {
		b, ok := m.Memory().Read(uint32(ptr), uint32(n))
		if !ok {
			panic("raw host: pointer outside guest memory")
		}
		return b
	}
	fail := func(code int64) uint64 { return api.EncodeI64(-code) }
	switch name {
	case "sys_clock_ms":
		return func(_ context.Context, _ api.Module, s []uint64) { s[0] = api.EncodeI64(time.Now().UnixMilli()) }
	case "ipc_publish":
		return func(_ context.Context, m api.Module, s []uint64) {
			topic := string(read(m, s[0], s[1]))
			payload := bytes.Clone(read(m, s[2], s[3]))
			if err := h.nc.Publish(topic, payload); err != nil {
				s[0] = fail(codeInternal)
				return
			}
			s[0] = 0
		}
	case "kv_set":
		return func(ctx context.Context, m api.Module, s []uint64) {
			key := "raw." + string(read(m, s[0], s[1]))
			if _, err := h.kv.Put(ctx, key, bytes.Clone(read(m, s[2], s[3]))); err != nil {
				s[0] = fail(codeInternal)
				return
			}
			s[0] = 0
		}
	case "kv_get":
		return func(ctx context.Context, m api.Module, s []uint64) {
			key := "raw." + string(read(m, s[0], s[1]))
			e, err := h.kv.Get(ctx, key)
			if err != nil {
				s[0] = fail(codeNotFound)
				return
			}
			v := e.Value()
			if uint64(len(v)) <= uint64(uint32(s[3])) && !m.Memory().Write(uint32(s[2]), v) {
				s[0] = fail(codeInternal)
				return
			}
			s[0] = uint64(len(v))
		}
	default:
		return func(_ context.Context, _ api.Module, s []uint64) { s[0] = fail(codeInternal) }
	}
}

// rawRuntime is a plain wazero compiler runtime (default configuration,
// the shared compilation cache) with WASI and a rawHost, and one compiled
// guest.
type rawRuntime struct {
	rt   wazero.Runtime
	code wazero.CompiledModule
}

func newRawRuntime(tb testing.TB, wasm []byte, h *rawHost) *rawRuntime {
	tb.Helper()
	r, err := openRawRuntime(wasm, h)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.close() })
	return r
}

func openRawRuntime(wasm []byte, h *rawHost) (*rawRuntime, error) {
	return openRawRuntimeConfig(wasm, h, wazero.NewRuntimeConfigCompiler())
}

// openRawRuntimeConfig is openRawRuntime on a runtime built from cfg (plus
// the shared compilation cache).
func openRawRuntimeConfig(wasm []byte, h *rawHost, cfg wazero.RuntimeConfig) (*rawRuntime, error) {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return nil, err
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg.WithCompilationCache(cache))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, err
	}
	code, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = &rawHost{}
	}
	hb := rt.NewHostModuleBuilder("astrid_v1")
	for _, f := range code.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != "astrid_v1" {
			continue
		}
		hb.NewFunctionBuilder().WithGoModuleFunction(h.fn(name), f.ParamTypes(), f.ResultTypes()).Export(name)
	}
	if _, err := hb.Instantiate(ctx); err != nil {
		return nil, err
	}
	return &rawRuntime{rt: rt, code: code}, nil
}

func (r *rawRuntime) close() { _ = r.rt.Close(context.Background()) }

// rawInstance is one instance of a reactor guest speaking the astrid guest
// exports, driven directly.
type rawInstance struct {
	mod            api.Module
	buffer, hook   api.Function
	bufPtr, bufCap uint32
	stack          [4]uint64
}

// instantiate instantiates the guest with the module configuration astrid
// uses (real clocks, crypto randomness, no start function) and runs
// _initialize.
func (r *rawRuntime) instantiate() (*rawInstance, error) {
	ctx := context.Background()
	mc := wazero.NewModuleConfig().WithName("").
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader).WithStartFunctions()
	mod, err := r.rt.InstantiateModule(ctx, r.code, mc)
	if err != nil {
		return nil, err
	}
	if _, err := mod.ExportedFunction("_initialize").Call(ctx); err != nil {
		_ = mod.Close(ctx)
		return nil, err
	}
	return &rawInstance{mod: mod, buffer: mod.ExportedFunction("astrid_buffer"), hook: mod.ExportedFunction("astrid_hook_trigger")}, nil
}

func (ri *rawInstance) close() { _ = ri.mod.Close(context.Background()) }

// trigger calls astrid_hook_trigger with action and payload through the
// exchange buffer and returns a copy of the framed result.
func (ri *rawInstance) trigger(action string, payload []byte) ([]byte, error) {
	ctx := context.Background()
	n := uint32(len(action) + len(payload))
	if ri.bufCap < n || ri.bufPtr == 0 {
		size := max(n, 4096)
		ri.stack[0] = uint64(size)
		if err := ri.buffer.CallWithStack(ctx, ri.stack[:]); err != nil {
			return nil, err
		}
		ri.bufPtr, ri.bufCap = uint32(ri.stack[0]), size
	}
	mem := ri.mod.Memory()
	if !mem.WriteString(ri.bufPtr, action) || !mem.Write(ri.bufPtr+uint32(len(action)), payload) {
		return nil, fmt.Errorf("exchange buffer outside memory")
	}
	ri.stack = [4]uint64{uint64(ri.bufPtr), uint64(len(action)), uint64(ri.bufPtr + uint32(len(action))), uint64(len(payload))}
	if err := ri.hook.CallWithStack(ctx, ri.stack[:]); err != nil {
		return nil, err
	}
	ptr, l := uint32(ri.stack[0]>>32), uint32(ri.stack[0])
	if l == 0 {
		return nil, nil
	}
	v, ok := mem.Read(ptr, l)
	if !ok {
		return nil, fmt.Errorf("result outside memory")
	}
	return bytes.Clone(v), nil
}

// ---- memory ----

// settledRSS collects garbage, returns freed memory to the OS and reads
// VmRSS (bytes) and the Go heap in use.
func settledRSS(tb testing.TB) (rss, heap uint64) {
	tb.Helper()
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			rss = kb << 10
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return rss, ms.HeapInuse
}

// capsuleDirOf builds the guest at dir (relative to the repo root) into a
// capsule dir with its own Capsule.toml, with extra TOML appended.
func capsuleDirOf(tb testing.TB, dir, wasmName, extra string) string {
	tb.Helper()
	out := capsuletest.CapsuleDir(tb, dir, wasmName)
	if extra == "" {
		return out
	}
	f, err := os.OpenFile(filepath.Join(out, "Capsule.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + extra + "\n"); err != nil {
		tb.Fatal(err)
	}
	return out
}
