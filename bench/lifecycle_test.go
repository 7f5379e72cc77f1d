package bench

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/hoststate"
)

// ---- row 5: restart latency ----

// instantiateRaw times r.n raw instantiations of the guest: instantiate,
// _initialize, close.
func instantiateRaw(r *run, rt *rawRuntime) {
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		in, err := rt.instantiate()
		if err != nil {
			r.tb.Fatal(err)
		}
		in.close()
		r.lat[i] = time.Since(t0)
	}
	r.stop()
}

// instantiateAstrid times what a handler capsule's restart costs the
// actor: a fresh hoststate.State and capsule.Module.Instantiate (which runs
// _initialize), then close.
func instantiateAstrid(r *run, mod *capsule.Module) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := hoststate.Config{CapsuleID: "bench-restart", Version: "0.1.0",
		Bindings: []hoststate.Binding{{HandleID: 1, Action: "ok", Topic: "bench.v1.ok"}}}
	inbox := hoststate.NewInbox(16)
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		st := hoststate.New(ctx, cfg, nil, nil, inbox, zerolog.Nop())
		in, err := mod.Instantiate(st, capsule.InstanceConfig{})
		if err != nil {
			r.tb.Fatal(err)
		}
		in.Close()
		st.Cancel(nil)
		r.lat[i] = time.Since(t0)
	}
	r.stop()
}

// trapRaw times r.n cycles of the raw equivalent of a handler restart: a
// handler call that traps, close, instantiate + _initialize, and a handler
// call that answers.
func trapRaw(r *run, rt *rawRuntime) {
	in, err := rt.instantiate()
	if err != nil {
		r.tb.Fatal(err)
	}
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		if _, err := in.trigger("boom", []byte(`{}`)); err == nil {
			r.tb.Fatal("boom did not trap")
		}
		in.close()
		if in, err = rt.instantiate(); err != nil {
			r.tb.Fatal(err)
		}
		res, err := in.trigger("ok", []byte(`{}`))
		if err != nil || string(res) != "\x01\"ok\"" {
			r.tb.Fatalf("ok after restart: %q, %v", res, err)
		}
		r.lat[i] = time.Since(t0)
	}
	r.stop()
	in.close()
}

// trapAstrid times r.n cycles of request boom (the handler traps; the
// requester gets a typed capsule-failed error once the actor has a new
// incarnation) then request ok (answered by the new incarnation). Every
// boom payload is distinct: the actor parks a payload that crashed it
// poison_threshold times without running it. prefix selects the capsule:
// "bench.v1" (on_crash = "deadletter": one trap and one new instance per
// boom) or "bench.v1.retry" (the default "retry": the boom is retried once
// on the fresh instance, so it costs two of each).
func trapAstrid(r *run, e *env, prefix string) {
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		payload := strconv.AppendInt([]byte(`{"boom":`), trapSeq.Add(1), 10)
		resp, err := e.client.Request(prefix+".boom", append(payload, '}'), waitLong)
		if err != nil {
			r.tb.Fatal(err)
		}
		if v := resp.Header.Get(bus.HeaderError); !strings.HasPrefix(v, "capsule-failed") {
			r.tb.Fatalf("boom: error %q, want capsule-failed", v)
		}
		if got := e.request(r.tb, prefix+".ok", []byte(`{}`), ""); string(got) != `"ok"` {
			r.tb.Fatalf("ok after restart: %q", got)
		}
		r.lat[i] = time.Since(t0)
	}
	r.stop()
}

// trapSeq makes every boom and crash payload distinct.
var trapSeq atomic.Int64

// BenchmarkRestart is row 5. instantiate: what replacing a trapped
// instance costs (astrid: new State + Instantiate with the node's cached
// compile; raw: wazero instantiate + _initialize), both with close.
// trap-to-ready: a handler call that traps until the next call is answered
// (astrid: two requests over NATS; raw: two export calls around a fresh
// instance); astrid-retry is the same under the default on_crash = "retry",
// which runs the crashing message a second time. Target: at most 1.5x, and
// p50 under 5 ms.
func BenchmarkRestart(b *testing.B) {
	e := startNode(b, srcCapsule(b), retryCapsule(b))
	_, wasm := capsuletest.Build(b, sinkGuest)
	rt := newRawRuntime(b, wasm, nil)
	mod, err := e.node.Engine().Compile(context.Background(), wasm, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("instantiate/raw-wazero", func(b *testing.B) {
		r := benchRun(b)
		instantiateRaw(r, rt)
		r.report(false)
	})
	b.Run("instantiate/astrid", func(b *testing.B) {
		r := benchRun(b)
		instantiateAstrid(r, mod)
		r.report(false)
	})
	b.Run("trap-to-ready/raw-wazero", func(b *testing.B) {
		r := benchRun(b)
		trapRaw(r, rt)
		r.report(false)
	})
	b.Run("trap-to-ready/astrid", func(b *testing.B) {
		r := benchRun(b)
		trapAstrid(r, e, "bench.v1")
		r.report(false)
	})
	b.Run("trap-to-ready/astrid-retry", func(b *testing.B) {
		r := benchRun(b)
		trapAstrid(r, e, "bench.v1.retry")
		r.report(false)
	})
}

// ---- row 6: boot ----

// bootCapsules is the size of the boot and memory rows.
const bootCapsules = 100

// bootRaw times r.n boots of len(dirs) raw instances: a new runtime on the
// warm compilation cache, the compile (a cache hit), and the instances,
// made by workers goroutines.
func bootRaw(r *run, wasm []byte, count, workers int) {
	r.pause()
	for range r.n {
		r.resume()
		rt, err := openRawRuntime(wasm, nil)
		if err != nil {
			r.tb.Fatal(err)
		}
		ins := make([]*rawInstance, count)
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < count; i = int(next.Add(1) - 1) {
					in, err := rt.instantiate()
					if err != nil {
						errs <- err
						return
					}
					ins[i] = in
				}
			})
		}
		wg.Wait()
		r.stop()
		close(errs)
		if err := <-errs; err != nil {
			r.tb.Fatal(err)
		}
		rt.close()
	}
}

// bootAstrid times r.n boots of the capsules in dirs with the warm
// compilation cache: node.Load until every capsule is ready. With dataDir
// empty every boot is a first install on a fresh node (each capsule's
// install hook runs in a one-shot instance and its binary is recorded);
// otherwise every boot restarts a node on dataDir, where the capsules are
// already installed. The node's start and shutdown are not timed.
func bootAstrid(r *run, dirs []string, dataDir string) {
	r.pause()
	for range r.n {
		dir := dataDir
		if dir == "" {
			dir = r.tb.TempDir()
		}
		n, shutdown := bareNodeAt(r.tb, dir)
		r.resume()
		loadAll(r.tb, n, dirs...)
		r.stop()
		shutdown()
	}
}

// installedDataDir is a node data dir on which dirs have been loaded once,
// so a node started on it boots them as already installed.
func installedDataDir(tb testing.TB, dirs []string) string {
	tb.Helper()
	dir := tb.TempDir()
	n, shutdown := bareNodeAt(tb, dir)
	loadAll(tb, n, dirs...)
	shutdown()
	return dir
}

// warmCaches compiles the guest once for each runtime configuration (the
// node's, with close-on-context-done, and the raw default), so every
// measured boot finds the compilation cache warm.
func warmCaches(tb testing.TB, wasm []byte) {
	tb.Helper()
	eng, err := capsule.NewEngine(capsule.EngineConfig{CacheDir: cacheDir})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := eng.Compile(context.Background(), wasm, 0); err != nil {
		tb.Fatal(err)
	}
	if err := eng.Close(context.Background()); err != nil {
		tb.Fatal(err)
	}
	rt, err := openRawRuntime(wasm, nil)
	if err != nil {
		tb.Fatal(err)
	}
	rt.close()
}

// BenchmarkBoot is row 6: 100 capsules of the sink guest to all-ready with
// a warm compile cache, against 100 raw instantiations (on one goroutine,
// and on GOMAXPROCS goroutines as capsule actors start in parallel).
// astrid restarts a node whose capsules are installed; astrid-first-install
// boots them on a fresh node, which also runs every install hook.
// Target: at most 1.5x, and under 1 s.
func BenchmarkBoot(b *testing.B) {
	dirs := idleCapsules(b, bootCapsules)
	_, wasm := capsuletest.Build(b, sinkGuest)
	warmCaches(b, wasm)
	installed := installedDataDir(b, dirs)
	b.Run("raw-wazero", func(b *testing.B) {
		r := benchRun(b)
		bootRaw(r, wasm, bootCapsules, 1)
		r.report(false)
	})
	b.Run("raw-wazero-parallel", func(b *testing.B) {
		r := benchRun(b)
		bootRaw(r, wasm, bootCapsules, runtime.GOMAXPROCS(0))
		r.report(false)
	})
	b.Run("astrid", func(b *testing.B) {
		r := benchRun(b)
		bootAstrid(r, dirs, installed)
		r.report(false)
	})
	b.Run("astrid-first-install", func(b *testing.B) {
		r := benchRun(b)
		bootAstrid(r, dirs, "")
		r.report(false)
	})
}

// ---- row 7: memory density ----

// memRaw measures the RSS and Go heap growth of count idle raw instances
// (compiled before the first reading), r.n times.
func memRaw(r *run, wasm []byte, count int) {
	r.pause()
	var rss, heap float64
	for range r.n {
		rt, err := openRawRuntime(wasm, nil)
		if err != nil {
			r.tb.Fatal(err)
		}
		rss0, heap0 := settledRSS(r.tb)
		ins := make([]*rawInstance, count)
		r.resume()
		for i := range ins {
			if ins[i], err = rt.instantiate(); err != nil {
				r.tb.Fatal(err)
			}
		}
		r.stop()
		rss1, heap1 := settledRSS(r.tb)
		rss += float64(int64(rss1-rss0)) / float64(count)
		heap += float64(int64(heap1-heap0)) / float64(count)
		runtime.KeepAlive(ins)
		rt.close()
	}
	memMetrics(r, rss, heap)
}

// memAstrid measures the RSS and Go heap growth of loading the capsules in
// dirs (idle handler capsules: actor, host state, router binding, NATS
// subscription, instance) on a started node whose engine has already
// compiled the guest, r.n times.
func memAstrid(r *run, wasm []byte, dirs []string) {
	r.pause()
	var rss, heap float64
	for range r.n {
		n, shutdown := bareNode(r.tb)
		if _, err := n.Engine().Compile(context.Background(), wasm, 0); err != nil {
			r.tb.Fatal(err)
		}
		rss0, heap0 := settledRSS(r.tb)
		r.resume()
		loadAll(r.tb, n, dirs...)
		r.stop()
		rss1, heap1 := settledRSS(r.tb)
		rss += float64(int64(rss1-rss0)) / float64(len(dirs))
		heap += float64(int64(heap1-heap0)) / float64(len(dirs))
		shutdown()
	}
	memMetrics(r, rss, heap)
}

func memMetrics(r *run, rss, heap float64) {
	per := rss / float64(r.n)
	r.metrics["rss-B/capsule"] = per
	r.metrics["heap-B/capsule"] = heap / float64(r.n)
	r.metrics["GiB/1000-capsules"] = per * 1000 / (1 << 30)
	if per <= 0 {
		r.tb.Errorf("RSS did not grow with %d instances (%.0f B each)", r.n, per)
	}
}

// BenchmarkMemory is row 7: RSS per idle capsule (100 loaded on a node)
// against RSS per idle raw wazero instance of the same guest, measured
// after GC and debug.FreeOSMemory. ns/op is the cost of one measurement and
// means nothing. Target: at most 1.3x; 1,000 capsules under 8 GiB.
func BenchmarkMemory(b *testing.B) {
	dirs := idleCapsules(b, bootCapsules)
	_, wasm := capsuletest.Build(b, sinkGuest)
	warmCaches(b, wasm)
	b.Run("raw-wazero", func(b *testing.B) {
		r := benchRun(b)
		memRaw(r, wasm, bootCapsules)
		r.report(false)
	})
	b.Run("astrid", func(b *testing.B) {
		r := benchRun(b)
		memAstrid(r, wasm, dirs)
		r.report(false)
	})
}

// ---- row 9: messages lost per restart ----

// lossResult counts the outcome of every request of the loss row.
type lossResult struct {
	sent, ok, failed, collateral, lost, crashes atomic.Int64
}

// lossAstrid sends r.n requests to the crashon capsule from workers
// concurrent requesters; every crashEvery-th one carries {"crash":true},
// which traps the handler (twice: on_crash = "retry" runs it again on the
// fresh instance before dead-lettering it). Every request must be answered: an echo, or for
// a crash request a typed capsule-failed error. A request that times out
// is lost; an error reply to a request that did not crash is collateral.
func lossAstrid(r *run, e *env, crashEvery, workers int) *lossResult {
	var res lossResult
	var next atomic.Int64
	lat := make([]time.Duration, r.n)
	r.start()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < r.n; i = int(next.Add(1) - 1) {
				payload, crashing := pad, i%crashEvery == crashEvery-1
				if crashing {
					// Distinct, so no crash message is parked as poison.
					payload = append(strconv.AppendInt([]byte(`{"crash":true,"i":`), trapSeq.Add(1), 10), '}')
					res.crashes.Add(1)
				}
				res.sent.Add(1)
				t0 := time.Now()
				resp, err := e.client.Request("crashon.v1.in", payload, 10*time.Second)
				lat[i] = time.Since(t0)
				switch {
				case err != nil:
					res.lost.Add(1)
				case resp.Header.Get(bus.HeaderError) != "":
					if crashing {
						res.failed.Add(1)
					} else {
						res.collateral.Add(1)
					}
				case crashing:
					res.collateral.Add(1) // a crash request must not be echoed
				default:
					res.ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.stop()
	r.lat = lat
	crashes := float64(res.crashes.Load())
	r.metrics["lost"] = float64(res.lost.Load())
	r.metrics["collateral"] = float64(res.collateral.Load())
	r.metrics["crash-msgs"] = crashes
	if crashes > 0 {
		r.metrics["lost/crash"] = float64(res.lost.Load()) / crashes
	}
	if got := res.ok.Load() + res.failed.Load() + res.collateral.Load() + res.lost.Load(); got != int64(r.n) {
		r.tb.Fatalf("accounted for %d of %d requests", got, r.n)
	}
	return &res
}

// crashonCapsule is capsule/testdata/guests/crashon with a restart budget
// the loss row cannot exhaust.
func crashonCapsule(tb testing.TB) string {
	return capsuleDirOf(tb, crashonGuest, "crashon.wasm", "[supervision]\nmax_restarts = 1000000\nwithin = \"1s\"")
}

// BenchmarkRestartLoss is row 9: a steady request load (8 concurrent
// requesters) on a capsule whose handler crashes on every 50th message;
// it reports lost requests (target 0), lost/restart, collateral errors
// and the request rate and latency under restarts.
func BenchmarkRestartLoss(b *testing.B) {
	e := startNode(b, crashonCapsule(b))
	b.Run("astrid", func(b *testing.B) {
		r := benchRun(b)
		lossAstrid(r, e, 50, 8)
		r.report(true)
	})
}
