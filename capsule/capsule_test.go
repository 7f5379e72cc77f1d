package capsule

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/hoststate"
)

const (
	abiGuest = "capsule/testdata/guests/abi"
	smallMem = 256 // pages (16 MiB): the class the alloc test runs in
)

// The engine is shared by the whole test binary, as in production: one
// compilation cache, each guest compiled once.
var (
	engineOnce sync.Once
	engine     *Engine
	engineErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if engine != nil {
		_ = engine.Close(context.Background())
	}
	os.Exit(code)
}

func sharedEngine(t testing.TB) *Engine {
	t.Helper()
	engineOnce.Do(func() { engine, engineErr = NewEngine(EngineConfig{}) })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engine
}

func compile(t testing.TB, dir string, pages uint32) *Module {
	t.Helper()
	_, wasm := capsuletest.Build(t, dir)
	m, err := sharedEngine(t).Compile(context.Background(), wasm, pages)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// transport is actors.Transport, line for line (importing actors here
// would be an import cycle).
type transport struct{ conn *bus.Conn }

func (t transport) Publish(m *bus.Message) error               { return t.conn.Publish(m) }
func (t transport) Reply(subject string, m *bus.Message) error { return t.conn.Reply(subject, m) }
func (t transport) Subscribe(pattern string, deliver func(*bus.Message)) (func(), error) {
	return t.conn.SubscribeMessages(t.conn.Subjects().Route(pattern), deliver)
}

type env struct {
	srv  *bus.Server
	conn *bus.Conn
	kv   *bus.KV
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := bustest.RunServer(t)
	c := bustest.Conn(t, s, bus.WithStamper(bustest.Stamper(t, "node-1")))
	kv, err := bus.OpenKV(context.Background(), c, bus.KVConfig{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: s, conn: c, kv: kv}
}

func abiConfig() hoststate.Config {
	return hoststate.Config{
		CapsuleID: "abi", Version: "0.1.0",
		Env:       map[string]string{"greeting": "hello"},
		Publish:   []string{"abi.v1.allowed.*"},
		Subscribe: []string{"abi.v1.sub.*"},
		Bindings:  []hoststate.Binding{{HandleID: 1, Action: "poll", Topic: "abi.v1.call.poll"}},
	}
}

func (e *env) instance(t testing.TB, m *Module, cfg hoststate.Config, timeout time.Duration) *Instance {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	st := hoststate.New(context.Background(), cfg, transport{e.conn}, e.kv, hoststate.NewInbox(64), log)
	in, err := m.Instantiate(st, InstanceConfig{CallTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		st.CloseSubscriptions()
		st.Cancel(errors.New("test over"))
	})
	return in
}

// call invokes action with input (JSON-encoded) and decodes the abi
// guest's reply.
func call(t testing.TB, in *Instance, action string, input any) map[string]any {
	t.Helper()
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	res, err := in.Invoke(action, b)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	if res.Kind != Final {
		t.Fatalf("%s: result %s %q, want final", action, res.Kind, res.Data)
	}
	var out map[string]any
	if err := json.Unmarshal(res.Data, &out); err != nil {
		t.Fatalf("%s: reply %q: %v", action, res.Data, err)
	}
	return out
}

// ok calls action and fails unless the guest reports success.
func ok(t testing.TB, in *Instance, action string, input any) map[string]any {
	t.Helper()
	out := call(t, in, action, input)
	if out["ok"] != true {
		t.Fatalf("%s(%v) = %v, want ok", action, input, out)
	}
	return out
}

// fails calls action and checks the guest saw the ABI error code.
func fails(t testing.TB, in *Instance, action string, input any, code hoststate.Code) map[string]any {
	t.Helper()
	out := call(t, in, action, input)
	if out["ok"] != false || out["err"] != code.String() {
		t.Fatalf("%s(%v) = %v, want error %s", action, input, out, code)
	}
	return out
}

func wantTrap(t *testing.T, err error, kind FailureKind) *TrapError {
	t.Helper()
	var te *TrapError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want *TrapError", err, err)
	}
	if te.Kind != kind {
		t.Fatalf("failure %s (%v), want %s; stderr:\n%s", te.Kind, te.Err, kind, te.Stderr)
	}
	return te
}

func TestCapsuleCompileOnce(t *testing.T) {
	_, wasm := capsuletest.Build(t, "examples/echo")
	e := sharedEngine(t)
	m1, err := e.Compile(context.Background(), wasm, 0)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := e.Compile(context.Background(), wasm, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatal("second Compile of the same binary compiled again")
	}
	if m1.Hash() != Hash(wasm) || m1.MemoryPages() != DefaultMemoryPages {
		t.Fatalf("hash %s pages %d", m1.Hash(), m1.MemoryPages())
	}
	m3, err := e.Compile(context.Background(), wasm, smallMem)
	if err != nil {
		t.Fatal(err)
	}
	if m3 == m1 || m3.MemoryPages() != smallMem {
		t.Fatal("another memory class must get its own Module")
	}
}

func TestCapsuleDiskCache(t *testing.T) {
	_, wasm := capsuletest.Build(t, "examples/echo")
	dir := t.TempDir()
	for i := range 2 {
		e, err := NewEngine(EngineConfig{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.Compile(context.Background(), wasm, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Exports().HookTrigger {
			t.Fatal("exports lost")
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) == 0 {
				t.Fatalf("cache dir empty after the first engine (%v)", err)
			}
		}
	}
	if _, err := NewEngine(EngineConfig{CacheDir: "/proc/astrid-no-such-dir"}); err == nil {
		t.Fatal("an unusable cache dir was accepted")
	}
}

func TestCapsuleExports(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want Exports
	}{
		{"examples/echo", Exports{Initialize: true, Buffer: true, HookTrigger: true, Install: true, Upgrade: true}},
		{"examples/ticker", Exports{Initialize: true, Buffer: true, HookTrigger: true, Run: true, Install: true, Upgrade: true}},
	} {
		got := compile(t, tc.dir, 0).Exports()
		// The SDK links every export but run into every guest; what tells
		// the kinds apart is run.
		if got.Run != tc.want.Run || got.HookTrigger != tc.want.HookTrigger || !got.Initialize || !got.Buffer {
			t.Errorf("%s: exports %+v, want %+v", tc.dir, got, tc.want)
		}
	}
}

func TestCapsuleCheckImports(t *testing.T) {
	i64 := []byte{0x7e}
	i32 := []byte{0x7f}
	mod := func(imports ...wasmImport) wasmModule {
		return wasmModule{
			types:   []wasmFunc{{results: i64}, {params: []byte{0x7f, 0x7f}, results: i64}, {params: i32}},
			imports: imports,
			memory:  true,
		}
	}
	noMemory := mod(wasmImport{ModuleName, "sys_clock_ms", 0})
	noMemory.memory = false
	importsMemory := mod()
	importsMemory.memory, importsMemory.importsMem = false, true
	for _, tc := range []struct {
		name string
		wasm []byte
		want string // "" = accepted
	}{
		{"valid", mod(wasmImport{ModuleName, "sys_clock_ms", 0}, wasmImport{"wasi_snapshot_preview1", "proc_exit", 2}).bytes(), ""},
		{"unknown astrid_v1 function", mod(wasmImport{ModuleName, "sys_reboot", 0}).bytes(), "unknown host function astrid_v1.sys_reboot"},
		{"unknown module", mod(wasmImport{"astrid_v2", "sys_clock_ms", 0}).bytes(), `unknown module "astrid_v2"`},
		{"wrong signature", mod(wasmImport{ModuleName, "sys_clock_ms", 1}).bytes(), "wrong signature"},
		{"unknown wasi function", mod(wasmImport{"wasi_snapshot_preview1", "sock_teleport", 0}).bytes(), "unknown host function wasi_snapshot_preview1.sock_teleport"},
		{"no memory export", noMemory.bytes(), `export its linear memory`},
		{"imported memory", importsMemory.bytes(), "imports memory env.memory"},
		{"not wasm", []byte("hello"), "compile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sharedEngine(t).Compile(context.Background(), tc.wasm, 0)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid module refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadModule) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadModule mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCapsuleABI(t *testing.T) {
	e := newEnv(t)
	m := compile(t, abiGuest, 0)
	in := e.instance(t, m, abiConfig(), 30*time.Second)
	ctx := context.Background()

	t.Run("kv round trips", func(t *testing.T) {
		ok(t, in, "kv_set", map[string]any{"key": "a", "value": "1"})
		if v := ok(t, in, "kv_get", map[string]any{"key": "a"})["value"]; v != "1" {
			t.Fatalf("kv_get a = %v", v)
		}
		ok(t, in, "kv_set", map[string]any{"key": "b/1", "value": "x"})
		keys := ok(t, in, "kv_list", map[string]any{"prefix": ""})["keys"].([]any)
		if len(keys) != 2 || keys[0] != "a" || keys[1] != "b/1" {
			t.Fatalf("kv_list = %v", keys)
		}
		ok(t, in, "kv_cas", map[string]any{"key": "a", "expected": "1", "new": "2"})
		fails(t, in, "kv_cas", map[string]any{"key": "a", "expected": "1", "new": "3"}, hoststate.CodeCASMismatch)
		fails(t, in, "kv_cas", map[string]any{"key": "a", "expected": nil, "new": "3"}, hoststate.CodeCASMismatch)
		ok(t, in, "kv_cas", map[string]any{"key": "fresh", "expected": nil, "new": "f"})
		if n := ok(t, in, "kv_clear", map[string]any{"prefix": "b/"})["n"]; n != 1.0 {
			t.Fatalf("kv_clear = %v", n)
		}
		ok(t, in, "kv_delete", map[string]any{"key": "a"})
		ok(t, in, "kv_delete", map[string]any{"key": "a"})
		fails(t, in, "kv_get", map[string]any{"key": "a"}, hoststate.CodeNotFound)
		// The guest's writes are in the owner's namespace of the real store.
		v, _, err := e.kv.Get(ctx, "default:capsule:abi", "fresh")
		if err != nil || string(v) != "f" {
			t.Fatalf("store default:capsule:abi/fresh = %q, %v", v, err)
		}
	})
	t.Run("kv limits", func(t *testing.T) {
		fails(t, in, "kv_set", map[string]any{"key": "big", "value": "x", "repeat": 1<<20 + 1}, hoststate.CodeTooLarge)
		ok(t, in, "kv_set", map[string]any{"key": "max", "value": "x", "repeat": 1 << 20})
		fails(t, in, "kv_set", map[string]any{"key": strings.Repeat("k", 257), "value": "v"}, hoststate.CodeTooLarge)
		ok(t, in, "kv_set", map[string]any{"key": strings.Repeat("k", 256), "value": "v"})
		fails(t, in, "kv_set", map[string]any{"key": "", "value": "v"}, hoststate.CodeInvalidInput)
	})
	t.Run("result_read beyond the 16 KiB out buffer", func(t *testing.T) {
		ok(t, in, "kv_set", map[string]any{"key": "wide", "value": "0123456789", "repeat": 10_000})
		out := ok(t, in, "kv_get", map[string]any{"key": "wide"})
		if out["len"] != 100_000.0 || out["value"] != strings.Repeat("0123456789", 10_000) {
			t.Fatalf("kv_get wide: len %v", out["len"])
		}
	})
	t.Run("kv list limit under another principal", func(t *testing.T) {
		for i := range hoststate.MaxKVListKeys + 1 {
			if _, err := e.kv.Put(ctx, "lister:capsule:abi", "k"+itoa(i), nil); err != nil {
				t.Fatal(err)
			}
		}
		in.State().BeginInvocation(&bus.Message{Topic: "abi.v1.call.kv_list", Principal: "lister"})
		defer in.State().EndInvocation()
		fails(t, in, "kv_list", map[string]any{"prefix": ""}, hoststate.CodeTooLarge)
		if keys := ok(t, in, "kv_list", map[string]any{"prefix": "k1"})["keys"].([]any); len(keys) != 25 {
			t.Fatalf("kv_list k1 = %d keys, want 25 (k1000-k1024)", len(keys))
		}
	})
	t.Run("config", func(t *testing.T) {
		out := ok(t, in, "config", map[string]any{"key": "greeting"})
		if out["found"] != true || out["value"] != "hello" {
			t.Fatalf("config greeting = %v", out)
		}
		if out := ok(t, in, "config", map[string]any{"key": "nope"}); out["found"] != false {
			t.Fatalf("config nope = %v", out)
		}
	})
	t.Run("caller", func(t *testing.T) {
		if c := ok(t, in, "caller", nil)["caller"].(map[string]any); c["principal"] != "" {
			t.Fatalf("caller outside an invocation = %v", c)
		}
		in.State().BeginInvocation(&bus.Message{Topic: "abi.v1.call.caller", Principal: "alice",
			Attribution: bus.Verified, Source: "src-1", Time: time.Now()})
		c := ok(t, in, "caller", nil)["caller"].(map[string]any)
		in.State().EndInvocation()
		if c["principal"] != "alice" || c["attribution"] != "verified" || c["source_id"] != "src-1" ||
			c["topic"] != "abi.v1.call.caller" || c["ts"] == "" {
			t.Fatalf("caller = %v", c)
		}
	})
	t.Run("random", func(t *testing.T) {
		if h := ok(t, in, "random", map[string]any{"n": 4096})["hex"].(string); len(h) != 8192 {
			t.Fatalf("random 4096 gave %d hex digits", len(h))
		}
		fails(t, in, "random", map[string]any{"n": 4097}, hoststate.CodeTooLarge)
	})
	t.Run("clock", func(t *testing.T) {
		before := time.Now().UnixMilli()
		ms := ok(t, in, "clock", nil)["ms"].(float64)
		if int64(ms) < before || int64(ms) > time.Now().UnixMilli() {
			t.Fatalf("clock %v outside [%d, now]", ms, before)
		}
		ok(t, in, "log", map[string]any{"level": 2, "msg": "hello from the guest"}) // content: TestCapsuleLog
	})
	t.Run("sleep", func(t *testing.T) {
		ok(t, in, "sleep", map[string]any{"ms": 5})
	})
	t.Run("publish", func(t *testing.T) {
		seen := make(chan bus.Message, 16)
		sub, err := e.conn.Subscribe(">", func(m *nats.Msg) { seen <- e.conn.Decode(m) })
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := e.conn.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
		fails(t, in, "publish", map[string]any{"topic": "abi.v1.denied.x", "payload": map[string]any{"n": 1}}, hoststate.CodeCapabilityDenied)
		fails(t, in, "publish", map[string]any{"topic": "abi.v1.allowed.x", "raw": "{not json"}, hoststate.CodeInvalidInput)
		fails(t, in, "publish", map[string]any{"topic": "abi.v1.allowed.*", "payload": 1}, hoststate.CodeInvalidInput)
		ok(t, in, "publish", map[string]any{"topic": "abi.v1.allowed.x", "payload": map[string]any{"n": 2}})
		// The sentinel goes out on the same connection after the refused
		// publishes: NATS keeps per-connection order, so anything they had
		// sent would arrive before it.
		ok(t, in, "publish", map[string]any{"topic": "abi.v1.allowed.sentinel", "payload": true})
		var got []string
		for done := false; !done; {
			select {
			case m := <-seen:
				got = append(got, m.Topic)
				if m.Topic == "abi.v1.allowed.x" && (string(m.Payload) != `{"n":2}` || m.Principal != "default" || m.Attribution != bus.Verified) {
					t.Fatalf("published %+v", m)
				}
				done = m.Topic == "abi.v1.allowed.sentinel"
			case <-time.After(5 * time.Second):
				t.Fatalf("sentinel not seen; got %v", got)
			}
		}
		if strings.Join(got, ",") != "abi.v1.allowed.x,abi.v1.allowed.sentinel" {
			t.Fatalf("NATS saw %v", got)
		}
	})
	t.Run("subscribe recv poll unsubscribe", func(t *testing.T) {
		fails(t, in, "subscribe", map[string]any{"pattern": "abi.v1.other.*"}, hoststate.CodeCapabilityDenied)
		h := ok(t, in, "subscribe", map[string]any{"pattern": "abi.v1.sub.*"})["handle"].(float64)
		if err := e.conn.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
		if out := ok(t, in, "poll", map[string]any{"handle": h}); out["empty"] != true {
			t.Fatalf("poll on an empty queue = %v", out)
		}
		client := bustest.Conn(t, e.srv)
		if err := client.Publish(&bus.Message{Topic: "abi.v1.sub.a", Payload: []byte(`{"hello":1}`)}); err != nil {
			t.Fatal(err)
		}
		env := ok(t, in, "recv", map[string]any{"handle": h, "timeout_ms": 5000})["envelope"].(map[string]any)
		if env["topic"] != "abi.v1.sub.a" || env["handle"] != h || env["attribution"] != "claimed" {
			t.Fatalf("envelope = %v", env)
		}
		fails(t, in, "recv", map[string]any{"handle": 0, "timeout_ms": 10}, hoststate.CodeTimeout)
		if err := client.Publish(&bus.Message{Topic: "abi.v1.sub.b", Payload: []byte(`[]`)}); err != nil {
			t.Fatal(err)
		}
		env = ok(t, in, "recv", map[string]any{"handle": 0, "timeout_ms": 5000})["envelope"].(map[string]any)
		if env["topic"] != "abi.v1.sub.b" {
			t.Fatalf("envelope = %v", env)
		}
		ok(t, in, "unsubscribe", map[string]any{"handle": h})
		fails(t, in, "poll", map[string]any{"handle": h}, hoststate.CodeClosed)
		fails(t, in, "unsubscribe", map[string]any{"handle": 1}, hoststate.CodeInvalidInput) // a binding
		b := ok(t, in, "bindings", nil)["bindings"].([]any)
		if len(b) != 1 || b[0].(map[string]any)["action"] != "poll" {
			t.Fatalf("bindings = %v", b)
		}
	})
	t.Run("reply", func(t *testing.T) {
		fails(t, in, "reply", map[string]any{"payload": 1}, hoststate.CodeNotFound)
		inbox := nats.NewInbox()
		replies := make(chan *nats.Msg, 1)
		sub, err := e.conn.NATS().ChanSubscribe(inbox, replies)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		st := in.State()
		st.BeginInvocation(&bus.Message{Topic: "abi.v1.call.reply", Principal: "bob", Reply: inbox})
		ok(t, in, "reply", map[string]any{"payload": map[string]any{"answer": 42}})
		replied := st.Replied()
		st.EndInvocation()
		if !replied {
			t.Fatal("Replied() = false")
		}
		select {
		case m := <-replies:
			if d := e.conn.Decode(m); string(d.Payload) != `{"answer":42}` || d.Principal != "bob" {
				t.Fatalf("reply %+v", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no reply")
		}
	})
	t.Run("ready", func(t *testing.T) {
		ok(t, in, "ready", nil)
		select {
		case <-in.State().Ready():
		default:
			t.Fatal("not ready after sys_signal_ready")
		}
	})
	t.Run("bad pointers", func(t *testing.T) {
		for _, arg := range []string{"key", "out"} {
			if code := ok(t, in, "badptr", map[string]any{"arg": arg})["code"]; code != -2.0 {
				t.Fatalf("badptr %s = %v, want -2", arg, code)
			}
		}
		ok(t, in, "clock", nil) // the host and the instance survive
	})
	if in.Dead() {
		t.Fatal("instance died during the ABI tests")
	}
}

func itoa(i int) string {
	b := []byte{'0' + byte(i/1000%10), '0' + byte(i/100%10), '0' + byte(i/10%10), '0' + byte(i%10)}
	return string(b)
}

func TestCapsuleBlockingCallsStopPromptly(t *testing.T) {
	e := newEnv(t)
	m := compile(t, abiGuest, 0)
	t.Run("cancel", func(t *testing.T) {
		in := e.instance(t, m, abiConfig(), time.Minute)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := in.Invoke("sleep", []byte(`{"ms":60000}`))
			done <- err
		}()
		// Whether the guest is already asleep or not, the call must end
		// with FailCancelled well before the sleep would have.
		time.AfterFunc(50*time.Millisecond, func() { in.State().Cancel(errors.New("stop")) })
		select {
		case err := <-done:
			wantTrap(t, err, FailCancelled)
		case <-time.After(10 * time.Second):
			t.Fatal("sleep not cancelled")
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("took %v", el)
		}
		if !in.Dead() {
			t.Fatal("instance alive after a cancelled call")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		in := e.instance(t, m, abiConfig(), 200*time.Millisecond)
		start := time.Now()
		_, err := in.Invoke("sleep", []byte(`{"ms":60000}`))
		wantTrap(t, err, FailDeadline)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("a 200ms call deadline took %v against a 60s sleep", el)
		}
	})
	t.Run("close", func(t *testing.T) {
		in := e.instance(t, m, abiConfig(), time.Minute)
		done := make(chan error, 1)
		go func() {
			_, err := in.Invoke("sleep", []byte(`{"ms":60000}`))
			done <- err
		}()
		time.AfterFunc(50*time.Millisecond, in.Close)
		select {
		case err := <-done:
			var te *TrapError
			if errors.As(err, &te) {
				if te.Kind != FailCancelled {
					t.Fatalf("closed call reported %s", te.Kind)
				}
			} else if !errors.Is(err, ErrClosed) {
				t.Fatalf("err = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not stop the call")
		}
	})
}

func TestCapsuleMemoryLimit(t *testing.T) {
	e := newEnv(t)
	m := compile(t, abiGuest, smallMem)
	in := e.instance(t, m, abiConfig(), 30*time.Second)
	ok(t, in, "alloc", map[string]any{"mib": 1})
	_, err := in.Invoke("alloc", []byte(`{"mib":64}`))
	wantTrap(t, err, FailMemory)
	if !in.Dead() {
		t.Fatal("instance alive after running out of memory")
	}
	if _, err := in.Invoke("clock", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke on a dead instance = %v, want ErrClosed", err)
	}
	fresh := e.instance(t, m, abiConfig(), 30*time.Second)
	ok(t, fresh, "clock", nil)
}

func TestCapsuleFaultGuests(t *testing.T) {
	e := newEnv(t)
	cfg := hoststate.Config{CapsuleID: "fault"}
	t.Run("trap", func(t *testing.T) {
		m := compile(t, "capsule/testdata/guests/trap", 0)
		in := e.instance(t, m, cfg, 30*time.Second)
		_, err := in.Invoke("boom", nil)
		te := wantTrap(t, err, FailTrap)
		if !strings.Contains(te.Stderr, "boom") {
			t.Fatalf("stderr tail lacks the panic: %q", te.Stderr)
		}
		if !in.Dead() {
			t.Fatal("instance alive after a trap")
		}
		if _, err := in.Invoke("ok", nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Invoke after trap = %v, want ErrClosed", err)
		}
		fresh := e.instance(t, m, cfg, 30*time.Second)
		res, err := fresh.Invoke("ok", nil)
		if err != nil || res.Kind != Final || string(res.Data) != `"ok"` {
			t.Fatalf("fresh instance: %v %s %q", err, res.Kind, res.Data)
		}
	})
	t.Run("spin", func(t *testing.T) {
		in := e.instance(t, compile(t, "capsule/testdata/guests/spin", 0), cfg, 200*time.Millisecond)
		start := time.Now()
		_, err := in.Invoke("spin", nil)
		wantTrap(t, err, FailDeadline)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("deadline of 200ms took %v", el)
		}
	})
	t.Run("exitcode", func(t *testing.T) {
		in := e.instance(t, compile(t, "capsule/testdata/guests/exitcode", 0), cfg, 30*time.Second)
		_, err := in.Invoke("exit", nil)
		te := wantTrap(t, err, FailExit)
		if te.ExitCode != 3 || te.Normal() {
			t.Fatalf("exit code %d normal %v", te.ExitCode, te.Normal())
		}
	})
	t.Run("no hook export", func(t *testing.T) {
		in := e.instance(t, compile(t, "capsule/testdata/guests/runcounter", 0), cfg, 30*time.Second)
		if in.HasRun() != true {
			t.Fatal("runcounter has no run export")
		}
	})
}

func TestCapsuleRunCancelled(t *testing.T) {
	e := newEnv(t)
	cfg := hoststate.Config{CapsuleID: "runcounter", Subscribe: []string{"runcounter.v1.*"}}
	in := e.instance(t, compile(t, "capsule/testdata/guests/runcounter", 0), cfg, 30*time.Second)
	done := make(chan error, 1)
	go func() { done <- in.Run() }()
	select {
	case <-in.State().Ready():
	case err := <-done:
		t.Fatalf("run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("run loop never signalled ready")
	}
	start := time.Now()
	in.State().Cancel(errors.New("unload"))
	select {
	case err := <-done:
		wantTrap(t, err, FailCancelled)
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("run took %v to stop", el)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after Cancel")
	}
}

func TestCapsuleRunNormalEnd(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, compile(t, "capsule/testdata/guests/exit", 0), hoststate.Config{CapsuleID: "exit"}, 30*time.Second)
	if err := in.Run(); err != nil {
		t.Fatalf("run returning nil ended with %v", err)
	}
	crash := e.instance(t, compile(t, "capsule/testdata/guests/crashloop", 0), hoststate.Config{CapsuleID: "crash"}, 30*time.Second)
	wantTrap(t, crash.Run(), FailTrap)
}

func TestCapsuleLifecycleHooks(t *testing.T) {
	e := newEnv(t)
	m := compile(t, abiGuest, 0)
	in := e.instance(t, m, abiConfig(), 30*time.Second)
	if err := in.Install(0); err != nil {
		t.Fatal(err)
	}
	if err := in.Upgrade("0.0.9", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"installed": "yes", "upgraded_from": "0.0.9"} {
		v, _, err := e.kv.Get(context.Background(), "default:capsule:abi", key)
		if err != nil || string(v) != want {
			t.Fatalf("%s = %q, %v; want %q", key, v, err, want)
		}
	}
}

func TestDecodeResult(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind ResultKind
		data string
	}{
		{"", Continue, ""}, {"\x00", Continue, ""}, {"\x00abc", Continue, "abc"},
		{"\x01{}", Final, "{}"}, {"\x02no", Deny, "no"}, {"\x03bad", Errored, "bad"}, {"{}", Continue, "{}"},
	} {
		r := DecodeResult([]byte(tc.in))
		if r.Kind != tc.kind || string(r.Data) != tc.data {
			t.Errorf("DecodeResult(%q) = %s %q, want %s %q", tc.in, r.Kind, r.Data, tc.kind, tc.data)
		}
	}
	if ResultKind(9).String() != "result(9)" {
		t.Error("out-of-range ResultKind")
	}
}
