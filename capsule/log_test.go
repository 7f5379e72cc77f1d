package capsule

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/hoststate"
)

// TestCapsuleLog checks sys_log end to end: the exact message reaches the
// capsule logger with source=guest (info and below at debug level: the node
// log takes warn and above; the per-principal files take everything), also after the SDK's out buffer has
// grown (regression: the host read 64 KiB of guest memory for a short
// message because it compared an untruncated i32 length), and long
// messages are cut at 64 KiB.
func TestCapsuleLog(t *testing.T) {
	e := newEnv(t)
	m := compile(t, abiGuest, 0)
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	st := hoststate.New(context.Background(), abiConfig(), transport{e.conn}, e.kv, hoststate.NewInbox(64), log)
	in, err := m.Instantiate(st, InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	type line struct {
		Level, Source, Principal, Message string
	}
	last := func() line {
		t.Helper()
		lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
		var l line
		if err := json.Unmarshal(lines[len(lines)-1], &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	ok(t, in, "log", map[string]any{"level": 2, "msg": "hello"})
	if l := last(); l != (line{"debug", "guest", "default", "hello"}) {
		t.Fatalf("logged %+v", l)
	}
	ok(t, in, "kv_set", map[string]any{"key": "wide", "value": "0123456789", "repeat": 10_000})
	ok(t, in, "kv_get", map[string]any{"key": "wide"})
	ok(t, in, "log", map[string]any{"level": 3, "msg": "after result_read"})
	if l := last(); l != (line{"warn", "guest", "default", "after result_read"}) {
		t.Fatalf("logged %+v (%d bytes)", l, len(l.Message))
	}
	ok(t, in, "log", map[string]any{"level": 99, "msg": strings.Repeat("x", 70_000)})
	if l := last(); l.Level != "error" || l.Message != strings.Repeat("x", hoststate.MaxLogMessageBytes) {
		t.Fatalf("long message logged at %s with %d bytes", l.Level, len(l.Message))
	}
}
