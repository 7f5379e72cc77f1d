// Package bustest starts real, embedded NATS servers for tests, the way
// net/http/httptest starts real HTTP servers: no sockets, JetStream on the
// test's temporary directory, cleanup registered on the test.
//
// It imports only bus and the standard library (plus zerolog for a
// silent logger). Tests anywhere in the module use it; production code
// must not.
//
// # Concurrency
//
// Every function may be called from parallel tests; each call builds its
// own server or connection.
//
// # Errors
//
// Failures stop the test with t.Fatal; nothing is returned.
package bustest

import (
	"testing"

	"github.com/astrid-go/astrid/bus"
	"github.com/rs/zerolog"
)

// RunServer starts an in-process-only NATS server (no TCP listener) with
// JetStream stored under t.TempDir() and logging off, and shuts it down
// when the test ends.
func RunServer(t testing.TB) *bus.Server {
	t.Helper()
	return RunServerAt(t, t.TempDir())
}

// RunServerAt is RunServer with JetStream data under dir, so a test can
// restart a server on the same data.
func RunServerAt(t testing.TB, dir string) *bus.Server {
	t.Helper()
	s, err := bus.StartServer(bus.ServerConfig{
		DataDir:   dir,
		JetStream: true,
		NoLog:     true,
	}, zerolog.Nop())
	if err != nil {
		t.Fatalf("bustest: start server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Conn connects to s in-process, named after the test, and closes the
// connection when the test ends (before the server shuts down, as
// cleanups run last-in first-out).
func Conn(t testing.TB, s *bus.Server, opts ...bus.ConnOption) *bus.Conn {
	t.Helper()
	c, err := bus.ConnectInProcess(s, t.Name(), zerolog.Nop(), opts...)
	if err != nil {
		t.Fatalf("bustest: connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Key is a fixed node key for tests that need a Stamper.
var Key = []byte("bustest-node-key-0123456789abcdef")

// Stamper returns a Stamper for node id node with Key.
func Stamper(t testing.TB, node string) *bus.Stamper {
	t.Helper()
	st, err := bus.NewStamper(Key, node)
	if err != nil {
		t.Fatalf("bustest: stamper: %v", err)
	}
	return st
}
