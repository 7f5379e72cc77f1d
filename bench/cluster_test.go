package bench

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
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

// twoNodeCluster starts two nodes whose embedded NATS servers form one
// cluster (routes on loopback), as two `astrid run --cluster-listen`
// would. Both start concurrently: a clustered JetStream waits for its peer.
func twoNodeCluster(tb testing.TB) (a, b *supervisor.Node) {
	tb.Helper()
	ra, rb := freeAddr(tb), freeAddr(tb)
	nodes := make([]*supervisor.Node, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, cfg := range []struct{ id, listen, route string }{{"xa", ra, rb}, {"xb", rb, ra}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = supervisor.Start(context.Background(), supervisor.Config{
				DataDir: tb.TempDir(), NATSListen: "127.0.0.1:-1", NodeID: cfg.id, CacheDir: cacheDir,
				Logger: nodeLogger(), ClusterName: "bench", ClusterListen: cfg.listen,
				Routes: []string{"nats-route://" + cfg.route},
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("node %d: %v", i, err)
		}
	}
	tb.Cleanup(func() {
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = n.Shutdown(ctx)
			cancel()
		}
	})
	return nodes[0], nodes[1]
}

// BenchmarkCrossNode is the cluster row of the suite: a client on node A
// asks the echo capsule running on node B (NATS routes the request across
// the cluster and the reply back), against a plain Go responder on node B
// in the same cluster. Report: p50/p99 latency.
func BenchmarkCrossNode(b *testing.B) {
	a, nb := twoNodeCluster(b)
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
