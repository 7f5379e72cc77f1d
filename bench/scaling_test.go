package bench

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
)

// scalingSizes are the capsule counts of the scaling curves.
var scalingSizes = []int{1, 10, 100, 1000}

// scaleThroughputRaw publishes r.n messages round-robin over n topics, each
// counted by a plain Go subscriber on the node's connection, then a flush
// marker on each; every subscriber reports its count.
func scaleThroughputRaw(r *run, e *env, n int) {
	nc := e.node.Conn().NATS()
	counted := make(chan int, n)
	for i := range n {
		count := 0
		sub, err := nc.Subscribe("bench.v1.rawscale."+idleTopic(i), func(m *nats.Msg) {
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
	}
	if err := nc.Flush(); err != nil {
		r.tb.Fatal(err)
	}
	r.start()
	spread(r, e, n, func(i int) string { return "bench.v1.rawscale." + idleTopic(i) })
	total := 0
	for range n {
		select {
		case c := <-counted:
			total += c
		case <-time.After(waitLong):
			r.tb.Fatalf("raw subscribers: a flush did not arrive within %v", waitLong)
		}
	}
	r.stop()
	if total != r.n {
		r.tb.Fatalf("raw subscribers counted %d of %d", total, r.n)
	}
}

// scaleThroughputAstrid is scaleThroughputRaw against n idle capsules:
// each counts its share and reports it on bench.v1.done.
func scaleThroughputAstrid(r *run, e *env, n int) {
	r.start()
	spread(r, e, n, idleTopic)
	total := 0
	for range n {
		total += e.waitCount(r.tb)
	}
	r.stop()
	if total != r.n {
		r.tb.Fatalf("%d capsules counted %d of %d", n, total, r.n)
	}
}

// spread publishes r.n messages round-robin over the n topics, then the
// flush marker on each.
func spread(r *run, e *env, n int, topic func(int) string) {
	topics := make([]string, n)
	for i := range topics {
		topics[i] = topic(i)
	}
	for i := range r.n {
		if err := e.client.Publish(topics[i%n], pad); err != nil {
			r.tb.Fatal(err)
		}
	}
	for _, t := range topics {
		if err := e.client.Publish(t, flushMarker); err != nil {
			r.tb.Fatal(err)
		}
	}
}

// scaleLatency sends r.n requests round-robin over the n topics, one at a
// time, and records each round trip.
func scaleLatency(r *run, e *env, n int, topic func(int) string) {
	topics := make([]string, n)
	for i := range topics {
		topics[i] = topic(i)
	}
	r.lat = make([]time.Duration, r.n)
	r.start()
	for i := range r.n {
		t0 := time.Now()
		resp, err := e.client.Request(topics[i%n], pad, waitLong)
		r.lat[i] = time.Since(t0)
		if err != nil {
			r.tb.Fatalf("request %s: %v", topics[i%n], err)
		}
		if v := resp.Header.Get(bus.HeaderError); v != "" || !bytes.Equal(resp.Data, pad) {
			r.tb.Fatalf("request %s: reply %q (error %q)", topics[i%n], resp.Data, v)
		}
	}
	r.stop()
}

// rawResponders answers n topics with msg.Respond on the node's connection.
func rawResponders(tb testing.TB, e *env, n int) {
	for i := range n {
		rawResponder(tb, e, "bench.v1.rawscale."+idleTopic(i)+".echo")
	}
}

// BenchmarkScaling is the stretch row of issue 7: one-way throughput and
// request p99 with 1, 10, 100 and 1,000 idle capsules on one node (messages
// and requests spread round-robin), against as many plain Go subscribers
// and responders. It boots up to 1,000 capsules (about 4 GiB), so it runs
// only when ASTRID_BENCH_SCALING is set; cmd/benchplot draws its curves.
func BenchmarkScaling(b *testing.B) {
	if os.Getenv("ASTRID_BENCH_SCALING") == "" {
		b.Skip("set ASTRID_BENCH_SCALING=1 to run the scaling curves (up to 1,000 capsules)")
	}
	for _, n := range scalingSizes {
		b.Run(fmt.Sprintf("capsules=%d", n), func(b *testing.B) {
			e := startNode(b, idleCapsules(b, n)...)
			rawResponders(b, e, n)
			b.Run("throughput/raw-nats", func(b *testing.B) {
				r := benchRun(b)
				scaleThroughputRaw(r, e, n)
				r.report(true)
			})
			b.Run("throughput/astrid", func(b *testing.B) {
				r := benchRun(b)
				scaleThroughputAstrid(r, e, n)
				r.report(true)
			})
			b.Run("latency/raw-nats", func(b *testing.B) {
				r := benchRun(b)
				scaleLatency(r, e, n, func(i int) string { return "bench.v1.rawscale." + idleTopic(i) + ".echo" })
				r.report(false)
			})
			b.Run("latency/astrid", func(b *testing.B) {
				r := benchRun(b)
				scaleLatency(r, e, n, func(i int) string { return idleTopic(i) + ".echo" })
				r.report(false)
			})
		})
	}
}
