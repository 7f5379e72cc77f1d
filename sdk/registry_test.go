package sdk

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/sdk/internal/loop"
)

// isolate gives a test an empty registry and restores the previous one
// afterwards.
func isolate(t *testing.T) {
	t.Helper()
	h, l, i, u := handlers, handlerList, onInstall, onUpgrade
	exp, fn := loop.Exported, loop.Fn
	handlers, handlerList, onInstall, onUpgrade = map[string]*handler{}, nil, nil, nil
	loop.Fn = nil
	t.Cleanup(func() {
		handlers, handlerList, onInstall, onUpgrade = h, l, i, u
		loop.Exported, loop.Fn = exp, fn
	})
}

func TestTriggerDispatch(t *testing.T) {
	isolate(t)
	var gotAction string
	var gotPayload []byte
	Handle("first", func(c *Call) Result {
		gotAction, gotPayload = c.Action(), bytes.Clone(c.Payload())
		return Final(c.Payload())
	})
	Handle("second", func(*Call) Result { return Deny("no") })
	Handle("decode", func(c *Call) Result {
		var v struct{ N int }
		if err := c.Decode(&v); err != nil {
			return Fail(err)
		}
		return Reply(v.N + 1)
	})

	tests := []struct {
		action, payload, want string
	}{
		{"first", `{"x":1}`, "\x01{\"x\":1}"},
		{"second", `{}`, "\x02no"},
		{"decode", `{"N":41}`, "\x0142"},
		{"decode", `{"N":`, "\x03sdk: decode payload: unexpected end of JSON input"},
		{"third", `{}`, "\x02unknown hook action: third"},
		{"firs", `{}`, "\x02unknown hook action: firs"},
		{"", `{}`, "\x02unknown hook action: "},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			if got := string(trigger([]byte(tt.action), []byte(tt.payload))); got != tt.want {
				t.Errorf("trigger(%q) = %q, want %q", tt.action, got, tt.want)
			}
		})
	}
	if gotAction != "first" || string(gotPayload) != `{"x":1}` {
		t.Errorf("handler saw action %q payload %q", gotAction, gotPayload)
	}
	if cur.payload != nil {
		t.Error("the reused Call still references the exchange buffer after the call")
	}
}

// TestTriggerManyHandlers covers the map lookup used beyond scanLimit.
func TestTriggerManyHandlers(t *testing.T) {
	isolate(t)
	names := make([]string, scanLimit+5)
	for i := range names {
		names[i] = "action" + strings.Repeat("x", i)
		reply := []byte(names[i])
		Handle(names[i], func(*Call) Result { return Final(reply) })
	}
	for _, name := range names {
		if got := string(trigger([]byte(name), nil)); got != "\x01"+name {
			t.Errorf("trigger(%q) = %q", name, got)
		}
	}
	if got := string(trigger([]byte("nope"), nil)); got != "\x02unknown hook action: nope" {
		t.Errorf("unknown action = %q", got)
	}
}

// TestTriggerResultIsACopy proves a handler may return its payload: the
// result is copied out before the host can overwrite the exchange buffer.
func TestTriggerResultIsACopy(t *testing.T) {
	isolate(t)
	Handle("echo", func(c *Call) Result { return Final(c.Payload()) })
	payload := []byte("abc")
	res := trigger([]byte("echo"), payload)
	copy(payload, "XYZ")
	if string(res) != "\x01abc" {
		t.Errorf("result %q changed with the exchange buffer", res)
	}
}

// TestTriggerDoesNotAllocate pins the ABI's promise: dispatch allocates
// nothing beyond what the handler does.
func TestTriggerDoesNotAllocate(t *testing.T) {
	isolate(t)
	Handle("echo", func(c *Call) Result { return Final(c.Payload()) })
	Handle("pass", func(*Call) Result { return Pass() })
	action, payload := []byte("echo"), bytes.Repeat([]byte("p"), 1000)
	trigger(action, payload) // grow resultBuf once
	for _, a := range [][]byte{action, []byte("pass")} {
		if n := testing.AllocsPerRun(1000, func() { trigger(a, payload) }); n != 0 {
			t.Errorf("trigger(%s) allocates %v times per call, want 0", a, n)
		}
	}
}

func TestHandlePanics(t *testing.T) {
	isolate(t)
	Handle("taken", func(*Call) Result { return Pass() })
	tests := []struct {
		name   string
		action string
		fn     func(*Call) Result
		want   string
	}{
		{"empty action", "", func(*Call) Result { return Pass() }, "empty action"},
		{"nil handler", "x", nil, "nil handler"},
		{"duplicate", "taken", func(*Call) Result { return Pass() }, "registered twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := panicMessage(func() { Handle(tt.action, tt.fn) }); !strings.Contains(got, tt.want) {
				t.Errorf("panic %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestRunRegistration(t *testing.T) {
	isolate(t)
	fn := func() error { return nil }

	loop.Exported = false
	if got := panicMessage(func() { Run(fn) }); !strings.Contains(got, `import _ "github.com/astrid-go/astrid/sdk/runloop"`) {
		t.Errorf("Run without the runloop import: panic %q, want the import to add", got)
	}
	if loop.Fn != nil {
		t.Fatal("Run registered a loop that can never run")
	}

	loop.Exported = true
	if got := panicMessage(func() { Run(nil) }); !strings.Contains(got, "nil run loop") {
		t.Errorf("Run(nil): panic %q", got)
	}
	if got := panicMessage(func() { Run(fn) }); got != "" {
		t.Fatalf("Run: unexpected panic %q", got)
	}
	if loop.Fn == nil {
		t.Fatal("Run did not register the loop")
	}
	if got := panicMessage(func() { Run(fn) }); !strings.Contains(got, "registered twice") {
		t.Errorf("second Run: panic %q", got)
	}
}

func TestLifecycleHooks(t *testing.T) {
	isolate(t)
	if got := install(); len(got) != 0 {
		t.Errorf("install without a hook = %q, want success", got)
	}
	if got := upgrade("0.1.0"); len(got) != 0 {
		t.Errorf("upgrade without a hook = %q, want success", got)
	}

	var prev string
	fail := errors.New("migration failed")
	OnInstall(func() error { return nil })
	OnUpgrade(func(p string) error { prev = p; return fail })
	if got := install(); len(got) != 0 {
		t.Errorf("install = %q, want success", got)
	}
	if got := string(upgrade("0.1.0")); got != "\x03migration failed" || prev != "0.1.0" {
		t.Errorf("upgrade = %q (prev %q), want failure with prev 0.1.0", got, prev)
	}

	for name, f := range map[string]func(){
		"OnInstall twice": func() { OnInstall(func() error { return nil }) },
		"OnUpgrade twice": func() { OnUpgrade(func(string) error { return nil }) },
		"OnInstall nil":   func() { OnInstall(nil) },
		"OnUpgrade nil":   func() { OnUpgrade(nil) },
	} {
		if panicMessage(f) == "" {
			t.Errorf("%s did not panic", name)
		}
	}
}

func TestExchangeBuffer(t *testing.T) {
	saved := exch
	t.Cleanup(func() { exch = saved })
	exch = nil

	b := exchangeBuffer(0)
	if len(b) != minExchange {
		t.Fatalf("first buffer %d bytes, want %d", len(b), minExchange)
	}
	if b2 := exchangeBuffer(minExchange); &b2[0] != &b[0] {
		t.Error("a request that fits replaced the buffer")
	}
	b3 := exchangeBuffer(minExchange + 1)
	if len(b3) < minExchange+1 || &b3[0] == &b[0] {
		t.Errorf("a larger request got %d bytes (same buffer: %v)", len(b3), &b3[0] == &b[0])
	}
	if b4 := exchangeBuffer(3 << 20); len(b4) < 3<<20 {
		t.Errorf("3 MiB request got %d bytes", len(b4))
	}
}

func TestExchangeRange(t *testing.T) {
	saved := exch
	t.Cleanup(func() { exch = saved })
	exch = []byte("0123456789")
	const base = 1000
	tests := []struct {
		name   string
		ptr, n uint32
		want   string
		ok     bool
	}{
		{"whole", base, 10, "0123456789", true},
		{"middle", base + 2, 3, "234", true},
		{"empty anywhere", 7, 0, "", true},
		{"before", base - 1, 2, "", false},
		{"past end", base + 8, 3, "", false},
		{"far", 0xFFFF_FFFF, 1, "", false},
		{"overflowing length", base + 1, 0xFFFF_FFFF, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := exchangeRange(base, tt.ptr, tt.n)
			if ok != tt.ok || string(got) != tt.want {
				t.Errorf("exchangeRange(%d, %d) = %q, %v; want %q, %v", tt.ptr, tt.n, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg, _ = r.(string)
			if msg == "" {
				msg = "non-string panic"
			}
		}
	}()
	f()
	return ""
}

// TestBatchLoop drives the astrid_hook_batch loop with a host that queues
// three more messages: each result reaches the host before the next message
// is written over the exchange buffer, including the last one, and a host
// that refuses a result gets it back as the export's result.
func TestBatchLoop(t *testing.T) {
	isolate(t)
	Handle("echo", func(c *Call) Result { return Final(c.Payload()) })
	Handle("deny", func(*Call) Result { return Deny("no") })
	queue := []struct{ action, payload string }{{"deny", `{}`}, {"echo", `{"n":2}`}, {"echo", `{"n":3}`}}
	var got []string
	next := func(res []byte) (uint32, uint32, bool, bool) {
		got = append(got, string(res))
		if len(queue) == 0 {
			return 0, 0, true, false
		}
		m := queue[0]
		queue = queue[1:]
		b := exchangeBuffer(uint32(len(m.action) + len(m.payload)))
		copy(b, m.action)
		copy(b[len(m.action):], m.payload)
		return uint32(len(m.action)), uint32(len(m.payload)), true, true
	}
	first := exchangeBuffer(64)
	n := copy(first, "echo")
	n2 := copy(first[n:], `{"n":0}`)
	last := batch(first[:n], first[n:n+n2], next)
	want := []string{"\x01{\"n\":0}", "\x02no", "\x01{\"n\":2}", "\x01{\"n\":3}"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("results handed to the host = %q, want %q", got, want)
	}
	if last != nil {
		t.Errorf("the export returned %q after the host took every result, want nothing", last)
	}
	// A host that refuses the result (an error) gets it as the export's.
	refused := batch([]byte("deny"), nil, func([]byte) (uint32, uint32, bool, bool) { return 0, 0, false, false })
	if string(refused) != "\x02no" {
		t.Errorf("result returned after hook_next failed = %q, want the handler's", refused)
	}
}

// TestBatchRejectsOversizedMessage: a host claiming a message longer than
// the exchange buffer is a host bug; the guest traps instead of reading
// outside the buffer.
func TestBatchRejectsOversizedMessage(t *testing.T) {
	isolate(t)
	Handle("echo", func(c *Call) Result { return Final(c.Payload()) })
	b := exchangeBuffer(16)
	copy(b, "echo{}")
	defer func() {
		if recover() == nil {
			t.Error("batch accepted a message larger than the exchange buffer")
		}
	}()
	batch(b[:4], b[4:6], func([]byte) (uint32, uint32, bool, bool) { return 4, uint32(len(exch)), true, true })
}
