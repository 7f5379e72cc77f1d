package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/supervisor"
)

// cacheDir is one compilation cache shared by every node of the test
// binary, as a restarted node would reuse its own.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "astrid-cache-")
	if err != nil {
		panic(err)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is a running astrid node for one test, on an embedded NATS server
// listening on a random loopback port, with an outside client connected the
// way the nats CLI would be.
type node struct {
	*supervisor.Node
	t      *testing.T
	client *bus.Conn
	events *recorder
}

// capsuleDir builds the guest in dir (relative to the repo root) and returns
// a capsule directory holding its Capsule.toml and .wasm. Extra TOML is
// appended to the manifest (for [limits]/[supervision] overrides).
func capsuleDir(t *testing.T, dir string, extra string) string {
	t.Helper()
	name := filepath.Base(dir)
	out := capsuletest.CapsuleDir(t, dir, name+".wasm")
	if extra != "" {
		f, err := os.OpenFile(filepath.Join(out, "Capsule.toml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("\n" + extra + "\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return out
}

func startNode(t *testing.T, dirs ...string) *node {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if testing.Verbose() {
		log = log.Level(zerolog.DebugLevel)
	}
	ctx := context.Background()
	n, err := supervisor.Start(ctx, supervisor.Config{
		DataDir:    t.TempDir(),
		NATSListen: "127.0.0.1:-1",
		NodeID:     "test",
		CacheDir:   cacheDir,
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	c, err := bus.Connect(ctx, n.ClientURL(), "test-client", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nd := &node{Node: n, t: t, client: c, events: record(t, c, "astrid.v1.capsule.*")}
	if len(dirs) > 0 {
		rep, err := n.Load(ctx, dirs...)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failed) > 0 {
			t.Fatalf("load failures: %v", rep.Failed)
		}
	}
	return nd
}

// req sends a request as an outside client claiming principal ("" for
// none) and returns the raw reply.
func (n *node) req(topic, payload, principal string) *nats.Msg {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := n.client.Request(ctx, &bus.Message{Topic: topic, Payload: []byte(payload), Principal: principal})
	if err != nil {
		n.t.Fatalf("request %s %s: %v", topic, payload, err)
	}
	return resp
}

// call sends a request and decodes a JSON reply into a map, failing on a
// typed error reply.
func (n *node) call(topic, payload, principal string) map[string]any {
	n.t.Helper()
	resp := n.req(topic, payload, principal)
	if e := resp.Header.Get(bus.HeaderError); e != "" {
		n.t.Fatalf("request %s: error reply %q", topic, e)
	}
	var out map[string]any
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		n.t.Fatalf("request %s: reply %q is not a JSON object: %v", topic, resp.Data, err)
	}
	return out
}

// recorder collects messages on a pattern as an outside subscriber.
type recorder = bustest.Recorder

func record(t *testing.T, c *bus.Conn, pattern string) *recorder {
	return bustest.Record(t, c, pattern)
}

// event waits for astrid.v1.capsule.<id>.<verb> and returns its body.
func (n *node) event(id, verb string, d time.Duration) supervisor.Event {
	n.t.Helper()
	m := n.events.WaitFor(n.t, d, "event "+id+"."+verb, func(m bus.Message) bool {
		return m.Topic == "astrid.v1.capsule."+id+"."+verb
	})
	var ev supervisor.Event
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		n.t.Fatalf("event body %q: %v", m.Payload, err)
	}
	return ev
}

func (n *node) countEvents(id, verb string) int {
	c := 0
	for _, m := range n.events.Snapshot() {
		if m.Topic == "astrid.v1.capsule."+id+"."+verb {
			c++
		}
	}
	return c
}

// metric returns the sum of the samples of the named metric whose labels
// include every name=value pair given.
func (n *node) metric(name string, labels ...string) float64 {
	n.t.Helper()
	fams, err := n.Metrics().Registry.Gather()
	if err != nil {
		n.t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	sample:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue sample
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}
