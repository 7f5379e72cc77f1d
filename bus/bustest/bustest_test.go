package bustest_test

import (
	"context"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/nats-io/nats.go"
)

func TestRunServerAndConn(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	if s.ClientURL() != "" {
		t.Errorf("RunServer listens on %q; want in-process only", s.ClientURL())
	}
	if !s.NATS().JetStreamEnabled() {
		t.Fatal("JetStream is off")
	}
	c := bustest.Conn(t, s, bus.WithStamper(bustest.Stamper(t, "n1")))
	ch := make(chan *nats.Msg, 1)
	if _, err := c.Subscribe("a.b", func(m *nats.Msg) { ch <- m }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(&bus.Message{Topic: "a.b", Payload: []byte(`{}`), Principal: "alice", Attribution: bus.Verified}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if d := c.Decode(m); d.Attribution != bus.Verified || d.Node != "n1" {
			t.Errorf("decoded %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bus.OpenKV(ctx, c, bus.KVConfig{}); err != nil {
		t.Fatal(err)
	}
}

// TestCleanupOrder runs a subtest that leaves its server and connection to
// the cleanups, then checks that both were shut down.
func TestCleanupOrder(t *testing.T) {
	var s *bus.Server
	var c *bus.Conn
	t.Run("inner", func(t *testing.T) {
		s = bustest.RunServer(t)
		c = bustest.Conn(t, s)
	})
	if !c.NATS().IsClosed() {
		t.Error("connection still open after the test ended")
	}
	if s.NATS().Running() {
		t.Error("server still running after the test ended")
	}
}

func TestRunServerAtReusesData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("write", func(t *testing.T) {
		kv, err := bus.OpenKV(ctx, bustest.Conn(t, bustest.RunServerAt(t, dir)), bus.KVConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "a:capsule:b", "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	})
	kv, err := bus.OpenKV(ctx, bustest.Conn(t, bustest.RunServerAt(t, dir)), bus.KVConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := kv.Get(ctx, "a:capsule:b", "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
