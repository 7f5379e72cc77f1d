package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/supervisor"
)

// linkCapsule writes a capsule dir running the link guest as capsule name,
// subscribed to "<name>.v1.in", exporting test:<name> and importing
// test:<imp> for each imp.
func linkCapsule(t *testing.T, name string, delayMs int, extra string, imports ...string) string {
	t.Helper()
	_, wasm := capsuletest.Build(t, "integration/testdata/guests/link")
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = %q\nversion = \"1.0.0\"\n\n[[component]]\nid = %q\nfile = \"link.wasm\"\n\n", name, name)
	fmt.Fprintf(&b, "[subscribe]\n\"%s.v1.in\" = { wit = \"opaque\" }\n\n", name)
	fmt.Fprintf(&b, "[exports]\n\"test:%s\" = \"1.0.0\"\n\n", name)
	if len(imports) > 0 {
		b.WriteString("[imports]\n")
		for _, imp := range imports {
			fmt.Fprintf(&b, "\"test:%s\" = \"^1.0\"\n", imp)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "[env]\ntopic = { type = \"text\", default = \"%s.v1.in\" }\nready_delay_ms = { type = \"text\", default = \"%d\" }\n\n", name, delayMs)
	b.WriteString(extra)
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "link.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// eventIndex returns the position of the first astrid.v1.capsule.<id>.<verb>
// event in the recording, or -1.
func (n *node) eventIndex(id, verb string) int {
	for i, m := range n.events.Snapshot() {
		if m.Topic == "astrid.v1.capsule."+id+"."+verb {
			return i
		}
	}
	return -1
}

// Capsules start in dependency order, each only after what it imports is
// ready, whatever order they are discovered in.
func TestIntegrationReadinessOrderedBoot(t *testing.T) {
	root := t.TempDir()
	// Discovery order is alphabetical: c-sink, b-mid, a-src; dependencies
	// say a-src, then b-mid, then c-sink.
	for _, d := range []string{
		linkCapsule(t, "c-sink", 0, "", "b-mid"),
		linkCapsule(t, "b-mid", 200, "", "a-src"),
		linkCapsule(t, "a-src", 200, ""),
	} {
		if err := os.Rename(d, filepath.Join(root, filepath.Base(d))); err != nil {
			t.Fatal(err)
		}
	}
	n := startNode(t)
	rep, err := n.Load(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.Order, ","); got != "a-src,b-mid,c-sink" {
		t.Fatalf("boot order %s", got)
	}
	if len(rep.NotReady) > 0 {
		t.Fatalf("not ready: %v", rep.NotReady)
	}
	n.event("c-sink", "ready", 10*time.Second)
	for _, pair := range [][2]string{{"a-src", "b-mid"}, {"b-mid", "c-sink"}} {
		ready, started := n.eventIndex(pair[0], "ready"), n.eventIndex(pair[1], "started")
		if ready < 0 || started < 0 || started < ready {
			t.Errorf("%s started (event %d) before %s was ready (event %d)", pair[1], started, pair[0], ready)
		}
	}
	// Shutdown runs in reverse boot order: c-sink stops first.
}

func TestIntegrationDependencyCycleBootsInDiscoveryOrder(t *testing.T) {
	n := startNode(t)
	rep, err := n.Load(context.Background(), linkCapsule(t, "x-one", 0, "", "y-two"), linkCapsule(t, "y-two", 0, "", "x-one"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cycle) != 2 {
		t.Fatalf("cycle %v, want both members", rep.Cycle)
	}
	if len(rep.NotReady) > 0 {
		t.Fatalf("cycle members not ready: %v", rep.NotReady)
	}
}

// rest_for_one on a three-capsule chain: when the source crashes, it and
// everything started after it restart; messages sent to a dependent while
// the source restarts wait and are delivered, none lost.
func TestIntegrationRestForOneChain(t *testing.T) {
	fast := "[supervision]\nbackoff_initial = \"50ms\"\nbackoff_max = \"100ms\"\n"
	dirs := []string{
		linkCapsule(t, "a-src", 0, fast),
		linkCapsule(t, "b-mid", 0, fast, "a-src"),
		linkCapsule(t, "c-sink", 0, fast, "b-mid"),
	}
	n := startNodeWith(t, &supervisor.FileConfig{Groups: []supervisor.GroupConfig{
		{Name: "chain", Strategy: supervisor.RestForOne, Capsules: []string{"a-src", "b-mid", "c-sink"}},
	}}, dirs...)
	n.event("c-sink", "ready", 10*time.Second)

	// b-mid answers before the crash.
	if got := n.req("b-mid.v1.in", `{"before":1}`, "").Data; string(got) != `{"before":1}` {
		t.Fatalf("b-mid before crash: %s", got)
	}
	dead := record(t, n.client, "astrid.v1.deadletter")
	if err := n.client.Publish(&bus.Message{Topic: "a-src.v1.in", Payload: []byte(`{"crash":true}`)}); err != nil {
		t.Fatal(err)
	}
	n.event("a-src", "restarted", 10*time.Second)
	n.event("b-mid", "restarted", 10*time.Second)
	n.event("c-sink", "restarted", 10*time.Second)
	// The crashing message is retried once (a second crash, a second
	// restart of the chain) and then dead-lettered.
	dead.WaitFor(t, 10*time.Second, "dead letter", func(bus.Message) bool { return true })
	// Then, after the second wave of restarts, every link serves again.
	n.events.WaitFor(t, 10*time.Second, "all ready", func(bus.Message) bool {
		for _, id := range []string{"a-src", "b-mid", "c-sink"} {
			if n.countEvents(id, "restarted") < 2 {
				return false
			}
		}
		infos, err := n.Capsules(time.Second)
		if err != nil {
			return false
		}
		for _, i := range infos {
			if i.State != "ready" {
				return false
			}
		}
		return true
	})
	if a, b, c := n.countEvents("a-src", "restarted"), n.countEvents("b-mid", "restarted"), n.countEvents("c-sink", "restarted"); b != a || c != a {
		t.Errorf("restarts a-src=%d b-mid=%d c-sink=%d: every a-src restart restarts its dependents", a, b, c)
	}
	for _, id := range []string{"a-src", "b-mid", "c-sink"} {
		want := fmt.Sprintf(`{"after":%q}`, id)
		if got := n.req(id+".v1.in", want, "").Data; string(got) != want {
			t.Errorf("%s after restart: %s", id, got)
		}
	}
}

func startNodeWith(t *testing.T, fc *supervisor.FileConfig, dirs ...string) *node {
	t.Helper()
	n := startNode(t)
	n.Node.SetFileConfig(fc)
	rep, err := n.Load(context.Background(), dirs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) > 0 {
		t.Fatalf("load failures: %v", rep.Failed)
	}
	return n
}

// A run loop that never signals ready is failed by its readiness timeout
// and restarted; with a tight budget it ends quarantined.
func TestIntegrationReadinessTimeout(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/neverready",
		"[supervision]\nreadiness_timeout = \"200ms\"\nmax_restarts = 1\nbackoff_initial = \"10ms\"\nbackoff_max = \"20ms\""))
	ev := n.event("neverready", "failed", 10*time.Second)
	if ev.Kind != "readiness-timeout" {
		t.Errorf("failed event kind %q, want readiness-timeout", ev.Kind)
	}
	n.event("neverready", "quarantined", 10*time.Second)
}

// Messages queued for a run loop survive its crash and reach the next
// incarnation in order; the message it was handling is retried once and
// then dead-lettered, and its requester gets a typed error. Every other
// request is answered exactly once.
func TestIntegrationRunLoopLossFreeRestart(t *testing.T) {
	n := startNode(t, linkCapsule(t, "solo", 0, "[supervision]\nbackoff_initial = \"20ms\"\nbackoff_max = \"50ms\"\n"))
	n.event("solo", "ready", 10*time.Second)
	dead := record(t, n.client, "astrid.v1.deadletter")
	replies := record(t, n.client, "test.replies.*")
	const total = 40
	for i := range total {
		payload := fmt.Sprintf(`{"i":%d}`, i)
		if i == 10 {
			payload = `{"crash":true,"i":10}`
		}
		m := &bus.Message{Topic: "solo.v1.in", Payload: []byte(payload), Reply: fmt.Sprintf("test.replies.%d", i)}
		if err := n.client.Publish(m); err != nil {
			t.Fatal(err)
		}
	}
	replies.WaitFor(t, 20*time.Second, "all replies", func(bus.Message) bool { return len(replies.Snapshot()) >= total })
	// The run loop handles its inbox in order: once a later sentinel is
	// answered, any duplicate of an earlier reply would have arrived.
	if err := n.client.Publish(&bus.Message{Topic: "solo.v1.in", Payload: []byte(`{"sentinel":1}`), Reply: "test.replies.sentinel"}); err != nil {
		t.Fatal(err)
	}
	replies.WaitFor(t, 10*time.Second, "sentinel", func(m bus.Message) bool { return m.Topic == "test.replies.sentinel" })
	got := map[string]int{}
	for _, m := range replies.Snapshot() {
		got[m.Topic]++
		i := strings.TrimPrefix(m.Topic, "test.replies.")
		if i == "sentinel" {
			continue
		}
		if i == "10" {
			if !strings.Contains(string(m.Payload), "dead-lettered") {
				t.Errorf("crash request reply %s, want a dead-lettered error", m.Payload)
			}
			continue
		}
		if want := fmt.Sprintf(`{"i":%s}`, i); string(m.Payload) != want {
			t.Errorf("reply %s: %s, want %s", m.Topic, m.Payload, want)
		}
	}
	for i := range total {
		if c := got[fmt.Sprintf("test.replies.%d", i)]; c != 1 {
			t.Errorf("request %d answered %d times", i, c)
		}
	}
	dead.WaitFor(t, 5*time.Second, "dead letter", func(m bus.Message) bool { return strings.Contains(string(m.Payload), `"crash":true`) })
	if c := n.countEvents("solo", "restarted"); c != 2 {
		t.Errorf("%d restarts, want 2 (the crash and its retry)", c)
	}
}
