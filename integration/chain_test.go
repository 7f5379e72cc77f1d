package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule/capsuletest"
)

// hopCapsule writes a hop guest as capsule name bound to topic with the
// given priority, tag and mode.
func hopCapsule(t *testing.T, root, name, topic string, priority int, mode string) string {
	t.Helper()
	_, wasm := capsuletest.Build(t, "integration/testdata/guests/hop")
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`[package]
name = %q
version = "1.0.0"

[[component]]
id = %q
file = "hop.wasm"

[subscribe]
%q = { wit = "opaque", handler = "hop", priority = %d }

[env]
tag = { type = "text", default = %q }
mode = { type = "text", default = %q }
`, name, name, topic, priority, name, mode)
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hop.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Interceptors across capsules run as the reference dispatcher does:
// strict matching, priority order (lower first), continue passes the
// modified payload on, final stops the chain and answers, deny stops it
// with a typed error, an error lets the chain continue.
func TestIntegrationInterceptorChain(t *testing.T) {
	type hop struct {
		name     string
		priority int
		mode     string
	}
	for _, tc := range []struct {
		name      string
		hops      []hop
		wantReply string
		wantError string
	}{
		{"continue continue final", []hop{{"a", 10, "continue"}, {"b", 20, "continue"}, {"c", 30, "final"}}, `{"trail":["a","b","c"]}`, ""},
		{"priority decides, not names", []hop{{"z", 5, "continue"}, {"b", 20, "continue"}, {"a", 30, "final"}}, `{"trail":["z","b","a"]}`, ""},
		{"final stops the chain", []hop{{"a", 10, "final"}, {"b", 20, "final"}}, `{"trail":["a"]}`, ""},
		{"deny stops with an error", []hop{{"a", 10, "continue"}, {"b", 20, "deny"}, {"c", 30, "final"}}, "", "denied: b"},
		{"errors continue", []hop{{"a", 10, "fail"}, {"b", 20, "continue"}, {"c", 30, "final"}}, `{"trail":["b","c"]}`, ""},
		{"pass keeps the payload", []hop{{"a", 10, "pass"}, {"b", 20, "final"}}, `{"trail":["b"]}`, ""},
		{"last continue answers", []hop{{"a", 10, "continue"}, {"b", 20, "continue"}}, `{"trail":["a","b"]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, h := range tc.hops {
				hopCapsule(t, root, h.name, "chain.v1.x", h.priority, h.mode)
			}
			n := startNode(t, root)
			resp := n.req("chain.v1.x", `{"trail":[]}`, "")
			if e := resp.Header.Get(bus.HeaderError); e != tc.wantError {
				t.Fatalf("Astrid-Error %q, want %q (body %s)", e, tc.wantError, resp.Data)
			}
			if tc.wantReply != "" && string(resp.Data) != tc.wantReply {
				t.Errorf("reply %s, want %s", resp.Data, tc.wantReply)
			}
		})
	}
}

// Strict matching: a trailing * of an interceptor is exactly one segment.
func TestIntegrationInterceptorStrictMatching(t *testing.T) {
	root := t.TempDir()
	hopCapsule(t, root, "one", "tool.v1.execute.*", 10, "final")
	n := startNode(t, root)
	if got := string(n.req("tool.v1.execute.search", `{"trail":[]}`, "").Data); got != `{"trail":["one"]}` {
		t.Errorf("one-segment match: %s", got)
	}
	ctx := t.Context()
	_, err := n.client.Request(ctx, &bus.Message{Topic: "tool.v1.execute.search.deep", Payload: []byte(`{"trail":[]}`)})
	if err == nil || !strings.Contains(err.Error(), "no responders") {
		t.Errorf("two-segment topic reached a strict one-segment interceptor: %v", err)
	}
}

// Same-priority interceptors fan out: each runs on the original payload;
// a final among them answers.
func TestIntegrationInterceptorFanOut(t *testing.T) {
	root := t.TempDir()
	hopCapsule(t, root, "left", "fan.v1.x", 10, "continue")
	hopCapsule(t, root, "right", "fan.v1.x", 10, "continue")
	hopCapsule(t, root, "end", "fan.v1.x", 20, "final")
	n := startNode(t, root)
	got := string(n.req("fan.v1.x", `{"trail":[]}`, "").Data)
	// Both fan-out members saw the original payload; the chain continues
	// with the last member's data in (capsule, action) order: "right".
	if got != `{"trail":["right","end"]}` {
		t.Errorf("reply %s", got)
	}
}
