package bus_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
)

// startInstance runs one instance of service "svc-test" on c answering
// verb "who" on its own id and on "all".
func startInstance(t *testing.T, c *bus.Conn, id string, h bus.ServiceHandler) *bus.Service {
	t.Helper()
	svc, err := bus.NewService(c, bus.ServiceConfig{Name: "svc-test", Version: "1.0.0", Metadata: map[string]string{"node": id}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	for _, target := range []string{id, bus.ControlAll} {
		if err := svc.AddEndpoint("who-"+target, bus.ControlTopic("who", target), h); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	return svc
}

func answer(id string) bus.ServiceHandler {
	return func(topic string, data []byte, _ map[string]string) ([]byte, error) {
		switch string(data) {
		case "typed":
			return nil, &bus.ServiceError{Code: "404", Description: "no such\nthing", Data: []byte(`{"node":"` + id + `"}`)}
		case "plain":
			return nil, errors.New("it broke")
		}
		return []byte(id + " " + topic), nil
	}
}

func TestServiceGather(t *testing.T) {
	s := bustest.RunServer(t)
	startInstance(t, bustest.Conn(t, s), "a", answer("a"))
	startInstance(t, bustest.Conn(t, s), "b", answer("b"))
	client := bustest.Conn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := func(rs []bus.ServiceReply) []string {
		var out []string
		for _, r := range rs {
			out = append(out, string(r.Data))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		opts bus.GatherOptions
	}{
		{"done after two", bus.GatherOptions{Done: func(rs []bus.ServiceReply) bool { return len(rs) == 2 }}},
		{"quiet window", bus.GatherOptions{Quiet: 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := client.Gather(ctx, bus.ControlTopic("who", bus.ControlAll), nil, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if g := got(rs); !slices.Equal(g, []string{"a astrid.v1.ctl.who.all", "b astrid.v1.ctl.who.all"}) {
				t.Errorf("replies %q", g)
			}
		})
	}
	r, err := client.RequestService(ctx, bus.ControlTopic("who", "b"), nil)
	if err != nil || string(r.Data) != "b astrid.v1.ctl.who.b" || r.Err != nil {
		t.Errorf("who.b = %+v %v", r, err)
	}
	r, err = client.RequestService(ctx, bus.ControlTopic("who", "a"), []byte("typed"))
	if err != nil || r.Err == nil || r.Err.Code != "404" || r.Err.Description != "no such thing" || string(r.Data) != `{"node":"a"}` {
		t.Errorf("typed error = %+v %v", r.Err, err)
	}
	r, err = client.RequestService(ctx, bus.ControlTopic("who", "a"), []byte("plain"))
	if err != nil || r.Err == nil || r.Err.Code != "500" || r.Err.Description != "it broke" {
		t.Errorf("plain error = %+v %v", r.Err, err)
	}
	if _, err := client.RequestService(ctx, bus.ControlTopic("who", "c"), nil); !errors.Is(err, bus.ErrNoResponders) {
		t.Errorf("who.c: %v, want no responders", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	silent := bustest.Conn(t, s)
	sub, err := silent.Subscribe("astrid.v1.ctl.who.silent", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = silent.NATS().Flush()
	if _, err := client.RequestService(short, bus.ControlTopic("who", "silent"), nil); !errors.Is(err, bus.ErrTimeout) {
		t.Errorf("who.silent: %v, want timeout", err)
	}
}

func TestServicePrefixAndStop(t *testing.T) {
	s := bustest.RunServer(t)
	pfx := bus.WithSubjects(bus.Subjects{Prefix: "astrid.prod"})
	svc := startInstance(t, bustest.Conn(t, s, pfx), "a", answer("a"))
	if svc.ID() == "" {
		t.Error("no instance id")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := bustest.Conn(t, s, pfx).RequestService(ctx, bus.ControlTopic("who", "a"), nil)
	if err != nil || string(r.Data) != "a astrid.v1.ctl.who.a" {
		t.Errorf("prefixed: %q %v (the handler sees the topic without the prefix)", r.Data, err)
	}
	plain := bustest.Conn(t, s)
	if _, err := plain.RequestService(ctx, bus.ControlTopic("who", "a"), nil); !errors.Is(err, bus.ErrNoResponders) {
		t.Errorf("unprefixed client: %v, want no responders", err)
	}
	resp, err := plain.NATS().RequestWithContext(ctx, "$SRV.PING.svc-test", nil)
	if err != nil || !bytes.Contains(resp.Data, []byte(`"node":"a"`)) {
		t.Errorf("micro discovery: %v", err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.NATS().RequestWithContext(ctx, "$SRV.PING.svc-test", nil); err == nil {
		t.Error("a stopped service still answers discovery")
	}
}

func TestObjectStore(t *testing.T) {
	s := bustest.RunServer(t)
	c := bustest.Conn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.OpenObjectStore(ctx, c, bus.ObjectStoreConfig{Bucket: "objs"}); !errors.Is(err, bus.ErrObjectNotFound) {
		t.Fatalf("missing bucket: %v", err)
	}
	store, err := bus.OpenObjectStore(ctx, c, bus.ObjectStoreConfig{Bucket: "objs", Create: true, Description: "test"})
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("wasm"), 100_000) // several chunks
	digest, err := store.Put(ctx, "echo/0.1.0/abc", blob, "echo 0.1.0")
	if err != nil || digest == "" {
		t.Fatalf("put: %q %v", digest, err)
	}
	other, err := bus.OpenObjectStore(ctx, bustest.Conn(t, s), bus.ObjectStoreConfig{Bucket: "objs"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.Get(ctx, "echo/0.1.0/abc")
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if _, err := other.Get(ctx, "echo/9/none"); !errors.Is(err, bus.ErrObjectNotFound) {
		t.Errorf("missing object: %v", err)
	}
}
