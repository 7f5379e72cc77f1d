package bench

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
)

// ---- row 1: one-way IPC throughput, 256 B ----

// ipcRawNATS publishes r.n messages from the outside client to a plain Go
// subscriber on the node's own (in-process) NATS connection, the connection
// the capsules' messages arrive on, then a flush marker; the subscriber
// reports its count when the marker arrives.
func ipcRawNATS(r *run, e *env) {
	counted := make(chan int, 1)
	count := 0
	sub, err := e.node.Conn().NATS().Subscribe("bench.v1.raw", func(m *nats.Msg) {
		if len(m.Data) > 2 && m.Data[2] == 'f' {
			counted <- count
			count = 0
			return
		}
		count++
	})
	if err != nil {
		r.tb.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		r.tb.Fatal(err)
	}
	if err := e.node.Conn().NATS().Flush(); err != nil {
		r.tb.Fatal(err)
	}
	r.start()
	publishN(r, e, "bench.v1.raw")
	var got int
	select {
	case got = <-counted:
	case <-time.After(waitLong):
		r.tb.Fatalf("raw subscriber: no flush within %v", waitLong)
	}
	r.stop()
	if got != r.n {
		r.tb.Fatalf("raw subscriber counted %d of %d messages", got, r.n)
	}
}

// ipcAstrid publishes r.n messages from the outside client to the sink
// capsule's handler, then the flush marker; the guest reports its count on
// bench.v1.done.
func ipcAstrid(r *run, e *env) {
	r.start()
	publishN(r, e, "bench.v1.sink")
	got := e.waitCount(r.tb)
	r.stop()
	if got != r.n {
		r.tb.Fatalf("sink capsule counted %d of %d messages", got, r.n)
	}
}

func publishN(r *run, e *env, subject string) {
	for range r.n {
		if err := e.client.Publish(subject, pad); err != nil {
			r.tb.Fatal(err)
		}
	}
	if err := e.client.Publish(subject, flushMarker); err != nil {
		r.tb.Fatal(err)
	}
}

// BenchmarkIPCThroughput is row 1: outside publisher -> NATS -> capsule
// actor -> wasm handler, against outside publisher -> NATS -> plain Go
// subscriber. Target: astrid at least 0.8x raw-nats msgs/s.
func BenchmarkIPCThroughput(b *testing.B) {
	e := startNode(b, sinkCapsule(b))
	b.Run("raw-nats", func(b *testing.B) {
		b.SetBytes(int64(len(pad)))
		r := benchRun(b)
		ipcRawNATS(r, e)
		r.report(true)
	})
	b.Run("astrid", func(b *testing.B) {
		b.SetBytes(int64(len(pad)))
		r := benchRun(b)
		ipcAstrid(r, e)
		r.report(true)
	})
}

// ---- row 2: request/reply latency, 256 B ----

// latency sends r.n requests on subject from the outside client, one at a
// time, and records each round trip; every reply must echo the payload.
func latency(r *run, e *env, subject string) {
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		resp, err := e.client.Request(subject, pad, waitLong)
		r.lat[i] = time.Since(t0)
		if err != nil {
			r.tb.Fatalf("request %d: %v", i, err)
		}
		if v := resp.Header.Get(bus.HeaderError); v != "" || !bytes.Equal(resp.Data, pad) {
			r.tb.Fatalf("request %d: reply %q (error %q), want the payload back", i, resp.Data, v)
		}
	}
	r.stop()
}

// rawResponder answers subject with msg.Respond on the node's connection.
func rawResponder(tb testing.TB, e *env, subject string) {
	sub, err := e.node.Conn().NATS().Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.node.Conn().NATS().Flush(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkRequestLatency is row 2: client -> echo capsule -> reply,
// against client -> plain Go responder (msg.Respond) on the same server and
// the same node connection. Target: p50 at most 1.2x, p99 at most 1.5x.
func BenchmarkRequestLatency(b *testing.B) {
	e := startNode(b, capsuleDirEcho(b))
	rawResponder(b, e, "bench.v1.rawecho")
	b.Run("raw-nats", func(b *testing.B) {
		r := benchRun(b)
		latency(r, e, "bench.v1.rawecho")
		r.report(false)
	})
	b.Run("astrid", func(b *testing.B) {
		r := benchRun(b)
		latency(r, e, "echo.v1.request")
		r.report(false)
	})
}

func capsuleDirEcho(tb testing.TB) string { return capsuleDirOf(tb, echoGuest, "echo.wasm", "") }

// ---- row 3: capsule-to-capsule publish ----

// c2cRawNATS is a Go publisher and a Go subscriber on the node's own
// connection, the one capsule publishes leave and arrive on.
func c2cRawNATS(r *run, e *env) {
	nc := e.node.Conn().NATS()
	counted := make(chan int, 1)
	count := 0
	sub, err := nc.Subscribe("bench.v1.rawc2c", func(m *nats.Msg) {
		if len(m.Data) > 2 && m.Data[2] == 'f' {
			counted <- count
			count = 0
			return
		}
		count++
	})
	if err != nil {
		r.tb.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		r.tb.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		r.tb.Fatal(err)
	}
	r.start()
	for range r.n {
		if err := nc.Publish("bench.v1.rawc2c", pad); err != nil {
			r.tb.Fatal(err)
		}
	}
	if err := nc.Publish("bench.v1.rawc2c", flushMarker); err != nil {
		r.tb.Fatal(err)
	}
	var got int
	select {
	case got = <-counted:
	case <-time.After(waitLong):
		r.tb.Fatalf("raw subscriber: no flush within %v", waitLong)
	}
	r.stop()
	if got != r.n {
		r.tb.Fatalf("raw subscriber counted %d of %d", got, r.n)
	}
}

// c2cChunk keeps one principal's share of a blast under its IPC budget
// (10 MiB/s per capsule and principal; 268 bytes of topic and payload per
// message allow 39,125 a second).
const c2cChunk = 30000

// c2cAstrid drives capsule bench-src with requests on bench.v1.blast, each
// publishing up to c2cChunk messages on bench.v1.c2c as a fresh principal;
// capsule bench-sink counts them and reports on the flush marker.
// oneBudget sends everything as one principal through blastwait, which
// waits out the rate limiter: the figure a single principal gets.
func c2cAstrid(r *run, e *env, oneBudget bool) {
	r.start()
	if oneBudget {
		rep := parseLoopReply(r.tb, e.request(r.tb, "bench.v1.blastwait", []byte(strconv.Itoa(r.n)), ""))
		r.metrics["budget-waits"] = float64(rep.Waits)
	} else {
		for left := r.n; left > 0; left -= c2cChunk {
			k := min(left, c2cChunk)
			rep := parseLoopReply(r.tb, e.request(r.tb, "bench.v1.blast", []byte(strconv.Itoa(k)), freshPrincipal()))
			if rep.Sent != k {
				r.tb.Fatalf("blast sent %d, want %d", rep.Sent, k)
			}
		}
	}
	e.request(r.tb, "bench.v1.flush", []byte(`{}`), "")
	got := e.waitCount(r.tb)
	r.stop()
	if got != r.n {
		r.tb.Fatalf("bench-sink counted %d of %d", got, r.n)
	}
}

// BenchmarkCapsuleToCapsule is row 3: capsule A publishes -> capsule B's
// handler, on one node, against a Go publisher -> Go subscriber on the
// node's connection. Target: astrid at least 0.7x raw-nats msgs/s.
// astrid spreads the load over principals (one per 30,000 messages) so the
// per-principal IPC budget does not cap it; astrid-one-principal shows the
// budget's ceiling.
func BenchmarkCapsuleToCapsule(b *testing.B) {
	e := startNode(b, sinkCapsule(b), srcCapsule(b))
	b.Run("raw-nats", func(b *testing.B) {
		b.SetBytes(int64(len(pad)))
		r := benchRun(b)
		c2cRawNATS(r, e)
		r.report(true)
	})
	b.Run("astrid", func(b *testing.B) {
		b.SetBytes(int64(len(pad)))
		r := benchRun(b)
		c2cAstrid(r, e, false)
		r.report(true)
	})
	b.Run("astrid-one-principal", func(b *testing.B) {
		b.SetBytes(int64(len(pad)))
		r := benchRun(b)
		c2cAstrid(r, e, true)
		r.report(true)
	})
}
