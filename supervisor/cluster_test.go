package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/astrid-go/astrid/capsule/capsuletest"
)

func TestPeerTableGone(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hb := func(id string, ms int64) Heartbeat { return Heartbeat{Node: id, IntervalMs: ms} }
	tests := []struct {
		name     string
		beats    []Heartbeat // all observed at t0
		at       time.Duration
		wantGone []string
	}{
		{name: "fresh peers stay", beats: []Heartbeat{hb("a", 1000), hb("b", 1000)}, at: 2900 * time.Millisecond},
		{name: "silent for 3 intervals", beats: []Heartbeat{hb("a", 1000), hb("b", 2000)}, at: 3 * time.Second, wantGone: []string{"a"}},
		{name: "each peer by its own interval", beats: []Heartbeat{hb("a", 1000), hb("b", 2000)}, at: 6 * time.Second, wantGone: []string{"a", "b"}},
		{name: "no interval: the default", beats: []Heartbeat{hb("a", 0)}, at: 15 * time.Second, wantGone: []string{"a"}},
		{name: "no interval: not yet", beats: []Heartbeat{hb("a", 0)}, at: 14 * time.Second},
		{name: "self is never gone", beats: []Heartbeat{hb("me", 1000)}, at: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := newPeerTable("me", 5*time.Second)
			for _, b := range tt.beats {
				if pt.observe(b, t0) {
					t.Fatalf("%s reported back on its first heartbeat", b.Node)
				}
			}
			var got []string
			for _, p := range pt.sweep(t0.Add(tt.at)) {
				got = append(got, p.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantGone, ",") {
				t.Fatalf("gone = %v, want %v", got, tt.wantGone)
			}
			// Reported once only.
			if again := pt.sweep(t0.Add(tt.at + time.Hour)); len(again) != len(tt.beats)-len(tt.wantGone)-btoi(hasSelf(tt.beats)) {
				t.Fatalf("second sweep reported %d, want only the peers not reported before", len(again))
			}
			for _, p := range pt.list() {
				if p.Self != (p.ID == "me") {
					t.Errorf("%s: Self = %v", p.ID, p.Self)
				}
			}
		})
	}

	t.Run("a heartbeat brings a gone peer back", func(t *testing.T) {
		pt := newPeerTable("me", time.Second)
		pt.observe(hb("a", 1000), t0)
		if len(pt.sweep(t0.Add(3*time.Second))) != 1 {
			t.Fatal("a not gone")
		}
		if !pt.observe(hb("a", 1000), t0.Add(4*time.Second)) {
			t.Fatal("a not reported back")
		}
		if p := pt.list()[0]; p.Gone || !p.LastSeen.Equal(t0.Add(4*time.Second)) {
			t.Fatalf("a after its return: %+v", p)
		}
		if pt.markGone("a", t0) != true || pt.markGone("a", t0) != false || pt.markGone("nobody", t0) != false {
			t.Fatal("markGone must report only the first departure of a known peer")
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func hasSelf(hbs []Heartbeat) bool {
	for _, h := range hbs {
		if h.Node == "me" {
			return true
		}
	}
	return false
}

func TestNodeIDPersisted(t *testing.T) {
	dir := t.TempDir()
	id, err := loadNodeID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidNodeID(id) || !strings.HasPrefix(id, "node-") || len(id) != len("node-")+8 {
		t.Fatalf("generated id %q", id)
	}
	again, err := loadNodeID(dir)
	if err != nil || again != id {
		t.Fatalf("second load: %q, %v; want %q", again, err, id)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "node.id"))
	if strings.TrimSpace(string(b)) != id {
		t.Fatalf("node.id holds %q", b)
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", strings.Repeat("x", 65)} {
		if ValidNodeID(bad) {
			t.Errorf("ValidNodeID(%q) = true", bad)
		}
	}
}

// msgLog records messages on a pattern through an outside connection.
type msgLog struct{ *bustest.Recorder }

func logMessages(t *testing.T, c *bus.Conn, pattern string) *msgLog {
	return &msgLog{bustest.Record(t, c, pattern)}
}

func (l *msgLog) event(t *testing.T, d time.Duration, id, verb, node string, after time.Time) Event {
	t.Helper()
	var ev Event
	l.WaitFor(t, d, id+"."+verb+" from "+node, func(m bus.Message) bool {
		var e Event
		if m.Topic != "astrid.v1.capsule."+id+"."+verb || json.Unmarshal(m.Payload, &e) != nil {
			return false
		}
		at, _ := time.Parse(time.RFC3339Nano, e.Time)
		if (node != "" && e.Node != node) || at.Before(after) {
			return false
		}
		ev = e
		return true
	})
	return ev
}

var (
	clusterCacheOnce sync.Once
	clusterCache     string
)

// testNode starts node id on its own embedded NATS (natsURL "") or on
// the NATS at natsURL; stop shuts it down (once; cleanup does it
// otherwise).
func testNode(t *testing.T, id, natsURL string, cfg Config) (n *Node, stop func()) {
	t.Helper()
	clusterCacheOnce.Do(func() {
		d, err := os.MkdirTemp("", "astrid-cluster-cache-")
		if err != nil {
			t.Fatal(err)
		}
		clusterCache = d
	})
	cfg.DataDir, cfg.NodeID, cfg.CacheDir = t.TempDir(), id, clusterCache
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if natsURL == "" {
		cfg.NATSListen = "127.0.0.1:-1"
	} else {
		cfg.NATSURL = natsURL
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				t.Errorf("shutdown %s: %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

func connect(t *testing.T, url string) *bus.Conn {
	t.Helper()
	c, err := bus.Connect(context.Background(), url, "test-client", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func peer(n *Node, id string) (PeerInfo, bool) {
	for _, p := range n.Peers() {
		if p.ID == id {
			return p, true
		}
	}
	return PeerInfo{}, false
}

// Heartbeats carry the inventory and labels; a peer that stops beating is
// reported gone once, within 3 of its intervals; one that shuts down
// announces itself; a heartbeat brings a gone peer back.
func TestClusterHeartbeats(t *testing.T) {
	const iv = 100 * time.Millisecond
	hub, _ := testNode(t, "hub", "", Config{HeartbeatInterval: iv, Labels: map[string]string{"zone": "a"}})
	c := connect(t, hub.ClientURL())
	nodes := logMessages(t, c, "astrid.v1.node.*")
	b, _ := testNode(t, "b", hub.ClientURL(), Config{HeartbeatInterval: iv})
	_, stopSlow := testNode(t, "slow", hub.ClientURL(), Config{HeartbeatInterval: 10 * time.Second})

	nodes.WaitFor(t, 5*time.Second, "heartbeats of hub, b and slow", func(bus.Message) bool {
		_, ok1 := peer(hub, "b")
		_, ok2 := peer(hub, "slow")
		_, ok3 := peer(b, "hub")
		return ok1 && ok2 && ok3
	})
	self, _ := peer(hub, "hub")
	if !self.Self || self.Labels["zone"] != "a" || self.Interval != iv || self.NATS != hub.ClientURL() {
		t.Fatalf("hub about itself: %+v", self)
	}
	if p, _ := peer(b, "hub"); p.Self || p.Labels["zone"] != "a" || p.Gone {
		t.Fatalf("b about hub: %+v", p)
	}

	// b falls silent without a word (its heartbeat loop stops, as if it
	// were killed).
	b.cluster.once.Do(func() {
		close(b.cluster.stop)
		<-b.cluster.done
	})
	silent := time.Now()
	m := nodes.WaitFor(t, 2*time.Second, "b reported gone by hub", func(m bus.Message) bool {
		return m.Topic == GoneTopic("b") && strings.Contains(string(m.Payload), `"detected_by":"hub"`)
	})
	var g NodeGone
	if err := json.Unmarshal(m.Payload, &g); err != nil {
		t.Fatal(err)
	}
	if d := g.Time.Sub(g.LastSeen); d < GoneAfter*iv || d > GoneAfter*iv+iv {
		t.Errorf("reported %v after b's last heartbeat; want %v to %v", d, GoneAfter*iv, GoneAfter*iv+iv)
	}
	t.Logf("b reported gone %v after it fell silent", g.Time.Sub(silent).Round(time.Millisecond))
	if p, _ := peer(hub, "b"); !p.Gone {
		t.Fatalf("hub's view of b: %+v", p)
	}
	// Once: several more intervals bring no second report from hub.
	nodes.WaitFor(t, 2*time.Second, "more hub heartbeats", func(m bus.Message) bool {
		var hb Heartbeat
		return m.Topic == HeartbeatTopic("hub") && json.Unmarshal(m.Payload, &hb) == nil && hb.Time.After(g.Time.Add(5*iv))
	})
	reports := 0
	for _, m := range nodes.Snapshot() {
		if m.Topic == GoneTopic("b") && strings.Contains(string(m.Payload), `"detected_by":"hub"`) {
			reports++
		}
	}
	if reports != 1 {
		t.Errorf("hub reported b gone %d times, want once", reports)
	}

	// b beats again: back.
	b.cluster.publish()
	nodes.WaitFor(t, 2*time.Second, "b back at hub", func(bus.Message) bool {
		p, _ := peer(hub, "b")
		return !p.Gone
	})

	// slow (10 s interval) shuts down: it says so, and hub marks it gone at
	// once rather than after 30 s.
	stopSlow()
	nodes.WaitFor(t, 2*time.Second, "slow gone at hub", func(bus.Message) bool {
		p, _ := peer(hub, "slow")
		return p.Gone
	})
	for _, m := range nodes.Snapshot() {
		if m.Topic == GoneTopic("slow") && !strings.Contains(string(m.Payload), `"detected_by":"slow"`) {
			t.Errorf("a node reported slow's announced departure again: %s", m.Payload)
		}
	}
}

func singletonTicker(t *testing.T) string {
	t.Helper()
	dir := capsuletest.CapsuleDir(t, "examples/ticker", "ticker.wasm")
	f, err := os.OpenFile(filepath.Join(dir, "Capsule.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n[supervision]\nsingleton = true\n"); err != nil {
		t.Fatal(err)
	}
	return dir
}

func state(t *testing.T, n *Node, id string) string {
	t.Helper()
	caps, err := n.Capsules(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range caps {
		if c.ID == id {
			return c.State
		}
	}
	return ""
}

// A singleton runs on the lease holder only; the others are standby. A
// holder whose lease is taken from it (fenced) stops at once; a lease
// nobody renews is taken over after the TTL; a holder that shuts down
// releases it and another node takes over at once.
func TestSingletonLease(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	dir := singletonTicker(t)
	hub, _ := testNode(t, "hub", "", Config{})
	c := connect(t, hub.ClientURL())
	events := logMessages(t, c, "astrid.v1.capsule.ticker.*")
	a, stopA := testNode(t, "a", hub.ClientURL(), Config{LeaseTTL: ttl})
	b, stopB := testNode(t, "b", hub.ClientURL(), Config{LeaseTTL: ttl})
	ctx := context.Background()

	if rep, err := a.Load(ctx, dir); err != nil || len(rep.NotReady) > 0 {
		t.Fatalf("load on a: %+v %v", rep, err)
	}
	first := events.event(t, 5*time.Second, "ticker", "leased", "a", time.Time{})
	start := time.Now()
	if rep, err := b.Load(ctx, dir); err != nil || len(rep.NotReady) > 0 {
		t.Fatalf("load on b: %+v %v", rep, err)
	}
	if d := time.Since(start); d > ttl {
		t.Errorf("a standby load took %v", d)
	}
	if sa, sb := state(t, a, "ticker"), state(t, b, "ticker"); sa != "ready" || sb != StateStandby {
		t.Fatalf("states: a %q, b %q; want ready and standby", sa, sb)
	}

	// An intruder takes the lease at its current revision (as a node that
	// saw it expire would): a must stop at once.
	leases, err := bus.OpenLeases(ctx, c, bus.LeaseConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := leases.Get(ctx, "ticker")
	if err != nil || cur.Holder != "a" || cur.Revision < first.Revision {
		t.Fatalf("lease: %+v %v", cur, err)
	}
	stolen, err := leases.Update(ctx, "ticker", "intruder", time.Now().Add(time.Hour), cur.Revision)
	if err != nil {
		t.Fatal(err)
	}
	lost := events.event(t, 5*time.Second, "ticker", "lease_lost", "a", time.Time{})
	if lost.Revision != first.Revision {
		t.Errorf("lease_lost carries revision %d, want the fence %d", lost.Revision, first.Revision)
	}
	if s := state(t, a, "ticker"); s != StateStandby {
		t.Fatalf("a after losing its lease: %q", s)
	}

	// Nobody renews the intruder's lease: a or b takes it after the TTL.
	taken := events.event(t, 3*ttl, "ticker", "leased", "", time.Now().Add(-time.Millisecond))
	if taken.Node != "a" && taken.Node != "b" || taken.Revision <= stolen.Revision {
		t.Fatalf("takeover: %+v; want a or b above revision %d", taken, stolen.Revision)
	}
	holder, other, stopHolder := a, b, stopA
	if taken.Node == "b" {
		holder, other, stopHolder = b, a, stopB
	}
	at, _ := time.Parse(time.RFC3339Nano, taken.Time)
	events.event(t, 5*time.Second, "ticker", "ready", holder.ID(), at)
	if sh, so := state(t, holder, "ticker"), state(t, other, "ticker"); sh != "ready" || so != StateStandby {
		t.Fatalf("after the takeover: %s %q, %s %q", holder.ID(), sh, other.ID(), so)
	}

	// The holder shuts down: it releases the lease, and the other node
	// takes it without waiting for the TTL.
	before := time.Now()
	stopHolder()
	moved := events.event(t, 5*time.Second, "ticker", "leased", other.ID(), before)
	mat, _ := time.Parse(time.RFC3339Nano, moved.Time)
	if d := mat.Sub(before); d > ttl {
		t.Errorf("takeover after a clean shutdown took %v; want well under the TTL %v", d, ttl)
	}
	released := false
	for _, m := range events.Snapshot() {
		if m.Topic == "astrid.v1.capsule.ticker.lease_lost" && strings.Contains(string(m.Payload), "released at shutdown") {
			released = true
		}
	}
	if !released {
		t.Error("no lease_lost event for the release at shutdown")
	}
	events.event(t, 5*time.Second, "ticker", "ready", other.ID(), mat)
	if s := state(t, other, "ticker"); s != "ready" {
		t.Fatalf("%s after the takeover: %q", other.ID(), s)
	}
	_, err = leases.Get(ctx, "ticker")
	if errors.Is(err, bus.ErrKeyNotFound) {
		t.Fatal("lease missing after the takeover")
	}
}
