package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
)

// nodeCounts are the cluster sizes of the node-scaling curves.
var nodeCounts = []int{1, 2, 3}

// requesters is the fixed pool of concurrent requesters of the
// node-scaling rows; requester i is connected to node i mod N.
const requesters = 16

const (
	// nodesRawSubject is answered by one plain Go responder per node, all
	// in the queue group nodesRawQueue, the raw twin of the routers'
	// actors.RouterQueue.
	nodesRawSubject = "bench.v1.nodes.rawecho"
	nodesRawQueue   = "bench.raw"
	// echoSubject is the example echo capsule's request topic.
	echoSubject = "echo.v1.request"
)

// clusterOf starts n nodes whose embedded NATS servers form one cluster
// (full mesh of routes on loopback), as n `astrid run --cluster-listen
// --routes` would. They start concurrently, since
// a clustered JetStream waits for its peers. n = 1 is a standalone node
// (`astrid run` without --cluster-listen): nats-server refuses a clustered
// JetStream without routes.
func clusterOf(tb testing.TB, n int) []*supervisor.Node {
	tb.Helper()
	routes := make([]string, n)
	for i := range routes {
		if n > 1 {
			routes[i] = freeAddr(tb)
		}
	}
	nodes := make([]*supervisor.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, "nats-route://"+r)
			}
		}
		cfg := supervisor.Config{
			DataDir: tb.TempDir(), NATSListen: "127.0.0.1:-1", NodeID: "s" + strconv.Itoa(i+1), CacheDir: cacheDir,
			Logger: nodeLogger(),
		}
		if n > 1 {
			cfg.ClusterName, cfg.ClusterListen, cfg.Routes = "bench-nodes", routes[i], peers
		}
		wg.Go(func() { nodes[i], errs[i] = supervisor.Start(context.Background(), cfg) })
	}
	wg.Wait()
	tb.Cleanup(func() {
		for _, nd := range nodes {
			if nd == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := nd.Shutdown(ctx); err != nil {
				tb.Errorf("shutdown %s: %v", nd.ID(), err)
			}
			cancel()
		}
	})
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("node %d of %d: %v", i+1, n, err)
		}
	}
	return nodes
}

// nodesEnv is an N-node cluster with the echo capsule loaded on every
// node, a raw responder per node and the requester pool.
type nodesEnv struct {
	nodes []*supervisor.Node
	conns []*nats.Conn // the requesters' connections, conn i on node i mod N
	// rawServed counts the requests each node's raw responder answered.
	rawServed []atomic.Int64
}

// startNodesEnv starts the cluster, loads echo on every node, subscribes
// the raw responders and connects the requesters, then waits (with a
// deadline) until every node's interest has reached every node and both
// subjects answer from every requester.
func startNodesEnv(tb testing.TB, n int) *nodesEnv {
	tb.Helper()
	ne := &nodesEnv{nodes: clusterOf(tb, n), rawServed: make([]atomic.Int64, n)}
	echo := capsuleDirEcho(tb)
	for i, nd := range ne.nodes {
		loadAll(tb, nd, echo)
		nc := nd.Conn().NATS()
		served := &ne.rawServed[i]
		sub, err := nc.QueueSubscribe(nodesRawSubject, nodesRawQueue, func(m *nats.Msg) {
			served.Add(1)
			_ = m.Respond(m.Data)
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = sub.Unsubscribe() })
		// A plain responder per node proves the mesh: every requester must
		// reach every node's ping subject across the routes.
		ping, err := nc.Subscribe(pingSubject(i), func(m *nats.Msg) { _ = m.Respond(nil) })
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = ping.Unsubscribe() })
		if err := nc.Flush(); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range requesters {
		nc, err := nats.Connect(ne.nodes[i%n].ClientURL(), nats.Name("bench-requester-"+strconv.Itoa(i)))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(nc.Close)
		ne.conns = append(ne.conns, nc)
	}
	subjects := []string{nodesRawSubject, echoSubject}
	for i := range n {
		subjects = append(subjects, pingSubject(i))
	}
	deadline := time.Now().Add(waitLong)
	for _, nc := range ne.conns {
		for _, subj := range subjects {
			for {
				if _, err := nc.Request(subj, pad, time.Second); err == nil {
					break
				}
				if time.Now().After(deadline) {
					tb.Fatalf("%s never became reachable from %s", subj, nc.ConnectedUrl())
				}
				<-time.After(20 * time.Millisecond) // poll interval while the routes' interest propagates
			}
		}
	}
	for i := range ne.rawServed {
		ne.rawServed[i].Store(0)
	}
	return ne
}

func pingSubject(i int) string { return "bench.v1.nodes.ping." + strconv.Itoa(i) }

// nodesRequests sends r.n requests on subject from the requester pool:
// each requester takes the next request number until r.n are taken, so
// there are always min(requesters, remaining) requests in flight. Every
// reply must echo pad without an Astrid-Error header. It records each
// round trip and sets the req/s metric.
func nodesRequests(r *run, conns []*nats.Conn, subject string) {
	r.lat = make([]time.Duration, r.n)
	var (
		next    atomic.Int64
		failed  atomic.Bool
		errOnce sync.Once
		failure error
		wg      sync.WaitGroup
	)
	r.start()
	for _, nc := range conns {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= r.n {
					return
				}
				t0 := time.Now()
				resp, err := nc.Request(subject, pad, waitLong)
				r.lat[i] = time.Since(t0)
				if err == nil {
					if v := resp.Header.Get(bus.HeaderError); v != "" || !bytes.Equal(resp.Data, pad) {
						err = fmt.Errorf("reply %q (error %q)", resp.Data, v)
					}
				}
				if err != nil {
					errOnce.Do(func() { failure = fmt.Errorf("request %d on %s via %s: %w", i, subject, nc.ConnectedUrl(), err) })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	r.stop()
	if failure != nil {
		r.tb.Fatal(failure)
	}
	if r.elapsed > 0 {
		r.metrics["req/s"] = float64(r.n) / r.elapsed.Seconds()
	}
}

// BenchmarkScalingNodes is the cluster half of issue 7's scaling curves:
// request throughput and p50/p99 with the echo capsule on every node of a
// 1-, 2- and 3-node cluster, against one plain Go queue-group responder
// per node, from the same pool of 16 concurrent requesters connected
// round-robin to the nodes. The routers' queue group (actors.RouterQueue)
// shares the requests among the nodes: NATS picks a member of the group
// at random across the cluster, not the requester's own server first, so
// (N-1)/N of the requests and their replies cross a route. All nodes run in
// this one process on this machine's cores, so the curve shows the cost of
// the routes, not a speed-up. It starts up to three nodes, so like
// BenchmarkScaling it runs only when ASTRID_BENCH_SCALING is set;
// cmd/benchplot draws its curves (docs/scaling-nodes-*.png).
func BenchmarkScalingNodes(b *testing.B) {
	if os.Getenv("ASTRID_BENCH_SCALING") == "" {
		b.Skip("set ASTRID_BENCH_SCALING=1 to run the scaling curves (1 to 3 nodes)")
	}
	for _, n := range nodeCounts {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			ne := startNodesEnv(b, n)
			for _, tc := range []struct{ name, subject string }{{"raw-nats", nodesRawSubject}, {"astrid", echoSubject}} {
				b.Run(tc.name, func(b *testing.B) {
					r := benchRun(b)
					nodesRequests(r, ne.conns, tc.subject)
					r.report(false)
				})
			}
		})
	}
}

// TestScalingNodesPath runs the node-scaling path once with a small count
// on a standalone node and on a two-node cluster: every request is
// answered with its payload, and every node serves a share, through the
// routers' queue group (astrid) and the raw responders' (raw-nats).
func TestScalingNodesPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the echo guest and starts a two-node cluster")
	}
	const count = 40 * requesters
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			ne := startNodesEnv(t, n)
			t.Run("raw-nats", func(t *testing.T) {
				r := testRun(t, count)
				nodesRequests(r, ne.conns, nodesRawSubject)
				checkRun(t, r, count)
				total := int64(0)
				for i := range ne.rawServed {
					s := ne.rawServed[i].Load()
					if s < count/(10*int64(n)) {
						t.Errorf("node %d's raw responder served %d of %d requests", i+1, s, count)
					}
					total += s
				}
				if total != count {
					t.Errorf("raw responders served %d requests, want %d", total, count)
				}
			})
			t.Run("astrid", func(t *testing.T) {
				// Each node's router receives the requests NATS gives it on
				// the node's own connection; its other traffic in the
				// meantime (a few heartbeats) is far below a tenth of a
				// node's share.
				before := make([]uint64, n)
				for i, nd := range ne.nodes {
					before[i] = nd.Conn().NATS().Stats().InMsgs
				}
				r := testRun(t, count)
				nodesRequests(r, ne.conns, echoSubject)
				checkRun(t, r, count)
				total := uint64(0)
				for i, nd := range ne.nodes {
					got := nd.Conn().NATS().Stats().InMsgs - before[i]
					if got < count/(10*uint64(n)) {
						t.Errorf("node %s received %d messages, want a share of %d requests", nd.ID(), got, count)
					}
					total += got
				}
				if total < count {
					t.Errorf("the nodes received %d messages for %d requests", total, count)
				}
			})
		})
	}
}

// checkRun fails unless r measured time, took a latency sample per
// request and computed req/s.
func checkRun(t *testing.T, r *run, count int) {
	t.Helper()
	if r.elapsed <= 0 {
		t.Error("measured no time")
	}
	if len(r.lat) != count {
		t.Errorf("%d latency samples for %d requests", len(r.lat), count)
	}
	for i, d := range r.lat {
		if d <= 0 {
			t.Fatalf("request %d has no latency sample", i)
		}
	}
	if r.metrics["req/s"] <= 0 {
		t.Errorf("req/s = %v", r.metrics["req/s"])
	}
}
