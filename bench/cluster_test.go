package bench

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
)

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BenchmarkCrossNode is the cluster row of the suite: a client on node A
// asks the echo capsule running on node B (NATS routes the request across
// the cluster and the reply back), against a plain Go responder on node B
// in the same cluster. Report: p50/p99 latency.
func BenchmarkCrossNode(b *testing.B) {
	nodes := clusterOf(b, 2)
	a, nb := nodes[0], nodes[1]
	loadAll(b, nb, capsuleDirEcho(b))
	sub, err := nb.Conn().NATS().Subscribe("bench.v1.rawecho", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	client, err := nats.Connect(a.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	// Wait until the cluster propagated both interests to node A.
	deadline := time.Now().Add(waitLong)
	for _, subj := range []string{"bench.v1.rawecho", "echo.v1.request"} {
		for {
			if _, err := client.Request(subj, pad, time.Second); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s never became reachable from node A", subj)
			}
			<-time.After(20 * time.Millisecond) // poll interval while the route's interest propagates

		}
	}
	for _, tc := range []struct{ name, subject string }{{"raw-nats", "bench.v1.rawecho"}, {"astrid", "echo.v1.request"}} {
		b.Run(tc.name, func(b *testing.B) {
			r := benchRun(b)
			r.lat = make([]time.Duration, r.n)
			r.start()
			for i := range r.n {
				t0 := time.Now()
				resp, err := client.Request(tc.subject, pad, waitLong)
				r.lat[i] = time.Since(t0)
				if err != nil {
					b.Fatalf("request %d: %v", i, err)
				}
				if v := resp.Header.Get(bus.HeaderError); v != "" || !bytes.Equal(resp.Data, pad) {
					b.Fatalf("request %d: reply %q (error %q)", i, resp.Data, v)
				}
			}
			r.stop()
			r.report(false)
		})
	}
}
