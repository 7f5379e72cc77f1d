package bus_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
)

// jsCluster starts three embedded servers routed to each other with
// clustered JetStream and returns an in-process connection to each.
func jsCluster(t *testing.T) []*bus.Conn {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	conns := make([]*bus.Conn, 3)
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[j]))
			}
		}
		s, err := bus.StartServer(bus.ServerConfig{DataDir: t.TempDir(), ServerName: fmt.Sprintf("s%d", i+1), Listen: "-1",
			JetStream: true, ClusterName: "c", ClusterListen: "127.0.0.1:" + strconv.Itoa(ports[i]), Routes: routes, NoLog: true},
			zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		c, err := bus.ConnectInProcess(s, t.Name(), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		conns[i] = c
	}
	return conns
}

// retry calls f until it succeeds (a clustered JetStream answers nothing
// before its meta leader is elected), failing after d.
func retry[T any](t *testing.T, d time.Duration, what string, f func(context.Context) (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v, err := f(ctx)
		cancel()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// On a three-server cluster with 3 replicas: a value written through one
// server reads back through every other at once (reads go to the stream
// leader), and StepDownFrom moves the lease bucket's leader off a server.
func TestClusteredKVAndLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a JetStream cluster")
	}
	conns := jsCluster(t)
	kvs := make([]*bus.KV, 3)
	for i, c := range conns {
		kvs[i] = retry(t, 60*time.Second, "open kv", func(ctx context.Context) (*bus.KV, error) {
			return bus.OpenKV(ctx, c, bus.KVConfig{Replicas: 3})
		})
	}
	ctx := testCtx(t)
	for i := range 30 {
		w, r := kvs[i%3], kvs[(i+1)%3]
		val := []byte(strconv.Itoa(i))
		if _, err := w.Put(ctx, "alice:capsule:counter", "count", val); err != nil {
			t.Fatal(err)
		}
		got, _, err := r.Get(ctx, "alice:capsule:counter", "count")
		if err != nil || string(got) != string(val) {
			t.Fatalf("write %d through s%d, read through s%d: %q, %v", i, i%3+1, (i+1)%3+1, got, err)
		}
	}

	leases := retry(t, 30*time.Second, "open leases", func(ctx context.Context) (*bus.Leases, error) {
		return bus.OpenLeases(ctx, conns[0], bus.LeaseConfig{Replicas: 3})
	})
	// Find the leader by asking each server to step down from itself:
	// only the leader's name triggers a step down.
	leader := ""
	for i := range 3 {
		name := fmt.Sprintf("s%d", i+1)
		moved := retry(t, 30*time.Second, "step down", func(ctx context.Context) (bool, error) {
			return leases.StepDownFrom(ctx, name)
		})
		if moved {
			leader = name
			break
		}
	}
	if leader == "" {
		t.Fatal("no server was the lease bucket's leader")
	}
	// The bucket elects another leader and serves writes again.
	l := retry(t, 30*time.Second, "create after the step down", func(ctx context.Context) (bus.Lease, error) {
		return leases.Create(ctx, "solo", "node", time.Now().Add(time.Minute))
	})
	if moved, err := leases.StepDownFrom(ctx, leader); err != nil || moved {
		t.Fatalf("%s still the leader after stepping down (moved %v, %v)", leader, moved, err)
	}
	if l.Revision == 0 {
		t.Fatal("no revision")
	}
}
