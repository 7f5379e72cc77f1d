package bus_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

func TestStartServerInProcessJetStream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := bus.StartServer(bus.ServerConfig{DataDir: dir, JetStream: true, ServerName: "n1", NoLog: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.ClientURL() != "" {
		t.Errorf("in-process server has ClientURL %q", s.ClientURL())
	}
	if !s.NATS().JetStreamEnabled() || s.NATS().Name() != "n1" {
		t.Errorf("jetstream %v, name %q", s.NATS().JetStreamEnabled(), s.NATS().Name())
	}
	c, err := bus.ConnectInProcess(s, "t", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.OpenKV(ctx, c, bus.KVConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("store not under DataDir/jetstream: %v", err)
	}
	// Payloads up to the ABI limit pass with headers on top.
	big := bytes.Repeat([]byte("x"), 1<<20)
	if err := c.Publish(&bus.Message{Topic: "big.v1", Payload: big, Principal: "alice"}); err != nil {
		t.Errorf("1 MiB publish: %v", err)
	}
	if err := c.NATS().Flush(); err != nil {
		t.Errorf("flush after 1 MiB publish: %v", err)
	}
	s.Shutdown()
	s.Shutdown() // idempotent
}

func TestStartServerErrors(t *testing.T) {
	t.Parallel()
	// Occupy a port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()

	tests := []struct {
		name string
		cfg  bus.ServerConfig
	}{
		{name: "jetstream without data dir", cfg: bus.ServerConfig{JetStream: true}},
		{name: "bad listen address", cfg: bus.ServerConfig{Listen: "nonsense"}},
		{name: "bad port", cfg: bus.ServerConfig{Listen: "127.0.0.1:99999"}},
		{name: "port in use", cfg: bus.ServerConfig{Listen: busy}},
		{name: "bad route", cfg: bus.ServerConfig{Listen: "-1", ClusterName: "c", ClusterListen: "127.0.0.1:-1", Routes: []string{"::"}}},
		{name: "cluster without client listener", cfg: bus.ServerConfig{ClusterName: "c", ClusterListen: "127.0.0.1:-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			s, err := bus.StartServer(tt.cfg, zerolog.Nop())
			if err == nil {
				s.Shutdown()
				t.Fatal("StartServer succeeded")
			}
			if !errors.Is(err, bus.ErrServerStart) {
				t.Errorf("err = %v, want ErrServerStart", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("failing took %v", d)
			}
		})
	}
}

func TestServerLogBridge(t *testing.T) {
	t.Parallel()
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		log := zerolog.New(&syncWriter{b: &buf})
		s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:-1", Verbose: verbose}, log)
		if err != nil {
			t.Fatal(err)
		}
		s.Shutdown()
		out := buf.String()
		hasInfo := strings.Contains(out, `"level":"info"`)
		if hasInfo != verbose {
			t.Errorf("verbose=%v: info lines present = %v\n%s", verbose, hasInfo, out)
		}
		if verbose && !strings.Contains(out, `"component":"nats-server"`) {
			t.Errorf("verbose log lacks the component field:\n%s", out)
		}
	}
}

// syncWriter serialises writes from the server's goroutines.
type syncWriter struct {
	mu chan struct{}
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	if w.mu == nil {
		w.mu = make(chan struct{}, 1)
	}
	w.mu <- struct{}{}
	defer func() { <-w.mu }()
	return w.b.Write(p)
}

func TestServerCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster formation is slow")
	}
	t.Parallel()
	a, err := bus.StartServer(bus.ServerConfig{ServerName: "a", Listen: "-1", ClusterName: "c", ClusterListen: "127.0.0.1:-1", NoLog: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	route := "nats-route://" + a.NATS().ClusterAddr().String()
	b, err := bus.StartServer(bus.ServerConfig{ServerName: "b", Listen: "-1", ClusterName: "c", ClusterListen: "127.0.0.1:-1", Routes: []string{route}, NoLog: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()

	ca, err := bus.ConnectInProcess(a, "ca", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := bus.ConnectInProcess(b, "cb", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ch := make(chan *nats.Msg, 16)
	if _, err := cb.Subscribe("x.y", func(m *nats.Msg) { ch <- m }); err != nil {
		t.Fatal(err)
	}
	if err := cb.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	// The route and the interest propagate asynchronously: publish until a
	// message crosses, within a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ca.Publish(&bus.Message{Topic: "x.y", Payload: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message crossed the route within 10s")
		}
	}
}
