package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
)

// clusterNode is one `astrid run` process of a three-node cluster.
type clusterNode struct {
	id      string
	url     string
	cmd     *exec.Cmd
	started chan struct{} // "node started": NATS and JetStream are up
	loaded  chan struct{} // "capsules loaded"
	done    chan error
	client  *bus.Conn
	events  *recorder // astrid.v1.capsule.ticker.* seen through this node
	nodes   *recorder // astrid.v1.node.* seen through this node
	out     *recorder // ticker.v1.out seen through this node
}

// startCluster starts n nodes at once (a clustered JetStream needs a
// quorum before any of them can finish starting), each an embedded NATS
// server routed to the others, loading dirs.
func startCluster(t *testing.T, n int, extra []string, dirs ...string) []*clusterNode {
	t.Helper()
	client, route := make([]int, n), make([]int, n)
	for i := range n {
		client[i], route[i] = freePort(t), freePort(t)
	}
	nodes := make([]*clusterNode, n)
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", route[j]))
			}
		}
		id := fmt.Sprintf("n%d", i+1)
		args := append([]string{"run", "--data", t.TempDir(), "--node-id", id,
			"--nats-listen", fmt.Sprintf("127.0.0.1:%d", client[i]),
			"--cluster-name", "test", "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", route[i]),
			"--routes", strings.Join(routes, ","), "--kv-replicas", "3", "--drain", "5s"}, extra...)
		args = append(args, dirs...)
		cmd := exec.Command(astridBinary(t), args...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cn := &clusterNode{id: id, url: fmt.Sprintf("nats://127.0.0.1:%d", client[i]), cmd: cmd,
			started: make(chan struct{}), loaded: make(chan struct{}), done: make(chan error, 1)}
		nodes[i] = cn
		go func() {
			sc := bufio.NewScanner(stderr)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			var s1, s2 sync.Once
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.Contains(line, `"message":"node started"`):
					s1.Do(func() { close(cn.started) })
				case strings.Contains(line, `"message":"capsules loaded"`):
					s2.Do(func() { close(cn.loaded) })
				}
				if testing.Verbose() {
					t.Log(id + " " + line)
				}
			}
			cn.done <- cmd.Wait()
		}()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
	}
	deadline := time.After(120 * time.Second)
	for _, cn := range nodes {
		select {
		case <-cn.started:
		case err := <-cn.done:
			t.Fatalf("%s exited before starting: %v", cn.id, err)
		case <-deadline:
			t.Fatalf("%s did not start within 120s", cn.id)
		}
		// Subscribe before the node loads its capsules, to see its leased
		// event if it takes the singleton at boot.
		c, err := bus.Connect(context.Background(), cn.url, "test-"+cn.id, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		cn.client = c
		cn.events = record(t, c, "astrid.v1.capsule.ticker.*")
		cn.nodes = record(t, c, "astrid.v1.node.*")
		cn.out = record(t, c, "ticker.v1.out")
	}
	for _, cn := range nodes {
		select {
		case <-cn.loaded:
		case err := <-cn.done:
			t.Fatalf("%s exited before loading: %v", cn.id, err)
		case <-deadline:
			t.Fatalf("%s did not load its capsules within 120s", cn.id)
		}
	}
	return nodes
}

// increment asks counter.v1.increment for principal through c, waiting
// at most attempt for each answer and retrying on timeout or a typed error
// reply (what a requester does during a failover) until within has
// passed. It returns the count, the id of the node that answered (its
// stamp) and how many attempts failed.
func increment(t *testing.T, c *bus.Conn, principal string, attempt, within time.Duration) (count int, node string, failed int) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), attempt)
		resp, err := c.Request(ctx, &bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{}`), Principal: principal})
		cancel()
		if err != nil {
			if !errors.Is(err, bus.ErrTimeout) && !errors.Is(err, bus.ErrNoResponders) {
				t.Fatalf("request: %v", err)
			}
			last = err
			failed++
			continue
		}
		if e := resp.Header.Get(bus.HeaderError); e != "" {
			last = errors.New(e)
			failed++
			continue
		}
		var out struct{ Count int }
		if err := json.Unmarshal(resp.Data, &out); err != nil {
			t.Fatalf("reply %q: %v", resp.Data, err)
		}
		return out.Count, bus.EnvelopeNode(resp.Header), failed
	}
	t.Fatalf("no answer within %v after %d failed attempts; last: %v", within, failed, last)
	return 0, "", failed
}

// heartbeats returns the latest heartbeat of every node recorded by r.
func heartbeats(r *recorder) map[string]supervisor.Heartbeat {
	out := map[string]supervisor.Heartbeat{}
	for _, m := range r.Snapshot() {
		if !strings.HasSuffix(m.Topic, ".heartbeat") {
			continue
		}
		var hb supervisor.Heartbeat
		if json.Unmarshal(m.Payload, &hb) == nil {
			out[hb.Node] = hb
		}
	}
	return out
}

func capsuleState(hb supervisor.Heartbeat, id string) string {
	for _, c := range hb.Capsules {
		if c.ID == id {
			return c.State
		}
	}
	return ""
}

// waitInventory waits until the latest heartbeats of nodes (seen through
// r) show counter ready everywhere and the singleton ticker ready on
// exactly one of them and standby on the others, and returns that one.
func waitInventory(t *testing.T, r *recorder, nodes []string, d time.Duration) string {
	t.Helper()
	var holder string
	r.WaitFor(t, d, "heartbeats: counter ready on every node, ticker ready on exactly one", func(bus.Message) bool {
		hbs := heartbeats(r)
		ready := []string{}
		for _, id := range nodes {
			hb, ok := hbs[id]
			if !ok || capsuleState(hb, "counter") != "ready" {
				return false
			}
			switch capsuleState(hb, "ticker") {
			case "ready":
				ready = append(ready, id)
			case supervisor.StateStandby:
			default:
				return false
			}
		}
		if len(ready) != 1 {
			return false
		}
		holder = ready[0]
		return true
	})
	return holder
}

func eventsOf(r *recorder, verb string) []supervisor.Event {
	var out []supervisor.Event
	for _, m := range r.Snapshot() {
		if m.Topic != "astrid.v1.capsule.ticker."+verb {
			continue
		}
		var ev supervisor.Event
		if json.Unmarshal(m.Payload, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// tick publishes n on ticker.v1.in and waits until it comes out on
// ticker.v1.out (seen through r), then checks that it came out once: one
// instance of the singleton relays it, never two.
func tick(t *testing.T, c *bus.Conn, r *recorder, n int) {
	t.Helper()
	payload := fmt.Sprintf(`{"n":%d}`, n)
	if err := c.Publish(&bus.Message{Topic: "ticker.v1.in", Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(t, 10*time.Second, "ticker.v1.out "+payload, func(m bus.Message) bool { return string(m.Payload) == payload })
	// A second instance would relay it too; publish a marker and wait for
	// it, so that any duplicate had time to arrive.
	marker := fmt.Sprintf(`{"n":%d,"marker":true}`, n)
	if err := c.Publish(&bus.Message{Topic: "ticker.v1.in", Payload: []byte(marker)}); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(t, 10*time.Second, "ticker.v1.out "+marker, func(m bus.Message) bool { return string(m.Payload) == marker })
	copies := 0
	for _, m := range r.Snapshot() {
		if string(m.Payload) == payload {
			copies++
		}
	}
	if copies != 1 {
		t.Fatalf("%s came out of the singleton %d times, want once", payload, copies)
	}
}

// Three `astrid run` processes form one NATS cluster (clustered JetStream,
// KV and lease buckets with 3 replicas), each loading the counter and a
// singleton ticker. Requests to the counter are spread over the nodes and
// its count is shared; the singleton runs on one node. SIGKILL of that
// node: requesters that retry keep being answered, the count continues,
// the singleton moves exactly once to a survivor within 10 s, and both
// survivors report the dead node gone within 3 heartbeat intervals.
func TestIntegrationClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes")
	}
	const interval = time.Second
	counter := capsuleDir(t, "examples/counter", "")
	ticker := capsuleDir(t, "examples/ticker", "[supervision]\nsingleton = true")
	nodes := startCluster(t, 3, []string{"--heartbeat", interval.String(), "--label", "zone=test"}, counter, ticker)
	ids := []string{nodes[0].id, nodes[1].id, nodes[2].id}
	byID := map[string]*clusterNode{}
	for _, cn := range nodes {
		byID[cn.id] = cn
	}

	// The singleton runs on exactly one node: one leased event (seen from
	// every node), and the inventories agree.
	holder := waitInventory(t, nodes[0].nodes, ids, 15*time.Second)
	var fence uint64
	for _, cn := range nodes {
		// A node that finished starting late may have subscribed after
		// the lease was taken; none may see two, or another holder.
		leased := eventsOf(cn.events, "leased")
		if len(leased) > 1 || (len(leased) == 1 && (leased[0].Node != holder || leased[0].Revision == 0)) {
			t.Fatalf("leased events seen through %s: %+v; want one, by %s", cn.id, leased, holder)
		}
		if len(leased) == 1 {
			fence = leased[0].Revision
		}
	}
	if fence == 0 {
		// Every recorder subscribed after the lease was taken (the nodes
		// log "capsules loaded" before their peers may have finished):
		// read the fence from the lease bucket itself.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		leases, err := bus.OpenLeases(ctx, nodes[0].client, bus.LeaseConfig{Replicas: 3})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		l, err := leases.Get(ctx, "ticker")
		cancel()
		if err != nil || l.Holder != holder || l.Revision == 0 {
			t.Fatalf("lease of the singleton: %+v, %v; want held by %s", l, err, holder)
		}
		fence = l.Revision
	}
	if hb := heartbeats(nodes[0].nodes)[holder]; hb.Labels["zone"] != "test" || hb.NATS != byID[holder].url {
		t.Errorf("heartbeat of %s: labels %v, nats %q", holder, hb.Labels, hb.NATS)
	}
	t.Logf("singleton ticker on %s (fencing revision %d)", holder, fence)
	tick(t, nodes[0].client, nodes[0].out, 1)

	// Requests through every node are answered by all of them, with one
	// shared count.
	answered := map[string]int{}
	want := 0
	for i := range 30 {
		count, by, failed := increment(t, nodes[i%3].client, "alice", 10*time.Second, 10*time.Second)
		want++
		if count != want || failed != 0 {
			t.Fatalf("increment %d: count %d after %d failures, want %d at once", i+1, count, failed, want)
		}
		answered[by]++
	}
	if len(answered) < 2 {
		t.Errorf("30 increments were all answered by %v; want them spread over the nodes", answered)
	}
	t.Logf("before the kill, increments answered per node: %v", answered)

	// SIGKILL the singleton's node.
	victim := byID[holder]
	var survivors []*clusterNode
	for _, cn := range nodes {
		if cn != victim {
			survivors = append(survivors, cn)
		}
	}
	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-victim.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed node did not exit")
	}

	// Requesters keep getting answers; the count continues (KV is
	// replicated). A request the dead node took may have counted before
	// its answer was lost, so a retry can skip a number, never repeat one.
	failedAttempts, skipped := 0, 0
	answered = map[string]int{}
	for i := range 20 {
		count, by, failed := increment(t, survivors[i%2].client, "alice", 2*time.Second, 30*time.Second)
		failedAttempts += failed
		if count <= want {
			t.Fatalf("increment after the kill: count %d, want more than %d (a lost update)", count, want)
		}
		skipped += count - want - 1
		want = count
		answered[by]++
	}
	if answered[victim.id] > 0 {
		t.Errorf("the dead node answered: %v", answered)
	}
	t.Logf("after the kill: 20 of 20 increments answered (failed attempts retried: %d; counts skipped: %d), per node %v",
		failedAttempts, skipped, answered)

	// The singleton moved, once, to a survivor within 10 s.
	obs := survivors[0]
	moved := obs.events.WaitFor(t, 10*time.Second-time.Since(killed)+time.Second, "ticker leased by a survivor", func(m bus.Message) bool {
		var ev supervisor.Event
		return m.Topic == "astrid.v1.capsule.ticker.leased" && json.Unmarshal(m.Payload, &ev) == nil && ev.Node != holder
	})
	var ev supervisor.Event
	_ = json.Unmarshal(moved.Payload, &ev)
	at, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil {
		t.Fatal(err)
	}
	takeover := at.Sub(killed)
	t.Logf("singleton moved from %s to %s in %v (fencing revision %d -> %d)", holder, ev.Node, takeover.Round(time.Millisecond), fence, ev.Revision)
	if takeover > 10*time.Second {
		t.Errorf("takeover took %v; want under 10s", takeover)
	}
	if ev.Revision <= fence {
		t.Errorf("new fencing revision %d is not above the old %d", ev.Revision, fence)
	}

	// Both survivors report the dead node gone within 3 intervals.
	for _, cn := range survivors {
		m := obs.nodes.WaitFor(t, 5*interval, cn.id+" reporting "+victim.id+" gone", func(m bus.Message) bool {
			var g supervisor.NodeGone
			return m.Topic == supervisor.GoneTopic(victim.id) && json.Unmarshal(m.Payload, &g) == nil && g.DetectedBy == cn.id
		})
		var g supervisor.NodeGone
		_ = json.Unmarshal(m.Payload, &g)
		after := g.Time.Sub(killed)
		t.Logf("%s reported %s gone %v after the kill (%v after its last heartbeat)", cn.id, victim.id,
			after.Round(time.Millisecond), g.Time.Sub(g.LastSeen).Round(time.Millisecond))
		if g.Time.Sub(g.LastSeen) > supervisor.GoneAfter*interval+250*time.Millisecond || after > supervisor.GoneAfter*interval+250*time.Millisecond {
			t.Errorf("%s reported the dead node gone %v after the kill; want within %d intervals", cn.id, after, supervisor.GoneAfter)
		}
	}

	// The survivors' inventories show the singleton on exactly the new
	// holder, and it relays each message once.
	obs.nodes.WaitFor(t, 5*interval, "inventories after the failover", func(bus.Message) bool {
		hbs := heartbeats(obs.nodes)
		ready := 0
		for _, cn := range survivors {
			hb := hbs[cn.id]
			if hb.Time.Before(at) {
				return false
			}
			if capsuleState(hb, "ticker") == "ready" {
				ready++
			}
		}
		return ready == 1 && capsuleState(hbs[ev.Node], "ticker") == "ready"
	})
	tick(t, survivors[1].client, survivors[1].out, 2)

	// Exactly one move: the survivors never saw another leased event or a
	// lost lease after the kill.
	for _, cn := range survivors {
		n := 0
		for _, e := range eventsOf(cn.events, "leased") {
			if e.Node != holder {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s saw %d takeovers, want 1: %+v", cn.id, n, eventsOf(cn.events, "leased"))
		}
		if lostEv := eventsOf(cn.events, "lease_lost"); len(lostEv) != 0 {
			t.Errorf("%s saw lease_lost events: %+v", cn.id, lostEv)
		}
	}
}
