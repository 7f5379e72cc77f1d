//go:build !wasip1

package sdk_test

// These tests build real guests (the examples and capsule/testdata/guests)
// with the Go toolchain for wasip1 and load them in real wazero. They check
// the guest half of the ABI contract: which exports each guest has, that its
// imports match docs/abi.md, and how the SDK's exports behave.
//
// Where a guest calls a host function, the tests provide a scripted astrid_v1
// module that returns fixed values: it is a fixture for the guest side, not
// the host implementation (that lives in package capsule).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type sig struct {
	params, results []api.ValueType
}

func (s sig) String() string {
	return fmt.Sprintf("(%s) -> (%s)", types(s.params), types(s.results))
}

func types(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ",")
}

func ret(params ...api.ValueType) sig { return sig{params: params, results: []api.ValueType{i64}} }

// hostFunctions is the astrid_v1 function table of docs/abi.md.
var hostFunctions = map[string]sig{
	"ipc_publish":              ret(i32, i32, i32, i32),
	"ipc_reply":                ret(i32, i32),
	"ipc_subscribe":            ret(i32, i32),
	"ipc_unsubscribe":          ret(i64),
	"ipc_poll":                 ret(i64, i32, i32),
	"ipc_recv":                 ret(i64, i64, i32, i32),
	"ipc_interceptor_bindings": ret(i32, i32),
	"kv_get":                   ret(i32, i32, i32, i32),
	"kv_set":                   ret(i32, i32, i32, i32),
	"kv_delete":                ret(i32, i32),
	"kv_list_keys":             ret(i32, i32, i32, i32),
	"kv_cas":                   ret(i32, i32, i32, i32, i32, i32),
	"kv_clear_prefix":          ret(i32, i32),
	"sys_log":                  ret(i32, i32, i32),
	"sys_get_config":           ret(i32, i32, i32, i32),
	"sys_get_caller":           ret(i32, i32),
	"sys_clock_ms":             ret(),
	"sys_sleep_ns":             ret(i64),
	"sys_random_bytes":         ret(i32, i32),
	"sys_signal_ready":         ret(),
	"result_read":              ret(i32, i32),
	"sys_elicit":               ret(i32, i32, i32, i32),
	"sys_has_secret":           ret(i32, i32),
	"hook_next":                ret(i32, i32),
}

// guestExports is the guest export table of docs/abi.md.
var guestExports = map[string]sig{
	"_initialize":         {},
	"astrid_buffer":       {params: []api.ValueType{i32}, results: []api.ValueType{i32}},
	"astrid_hook_trigger": ret(i32, i32, i32, i32),
	"astrid_hook_batch":   ret(i32, i32, i32, i32),
	"astrid_install":      ret(),
	"astrid_upgrade":      ret(i32, i32),
	"run":                 {},
}

// guests lists every guest in the repository and whether it is a run-loop
// capsule (exports run).
var guests = []struct {
	dir     string
	runLoop bool
}{
	{"examples/echo", false},
	{"examples/counter", false},
	{"examples/ticker", true},
	{"capsule/testdata/guests/abi", false},
	{"capsule/testdata/guests/trap", false},
	{"capsule/testdata/guests/spin", false},
	{"capsule/testdata/guests/memhog", false},
	{"capsule/testdata/guests/exit", true},
	{"capsule/testdata/guests/exitcode", false},
	{"capsule/testdata/guests/neverready", true},
	{"capsule/testdata/guests/crashloop", true},
	{"capsule/testdata/guests/crashon", false},
	{"capsule/testdata/guests/crashon_loop", true},
	{"capsule/testdata/guests/runcounter", true},
}

var (
	buildDir   string
	moduleRoot string
	wasmCache  = wazero.NewCompilationCache()
	buildsMu   sync.Mutex
	builds     = map[string]*build{}
)

// build is one guest built once per test binary.
type build struct {
	once sync.Once
	wasm []byte
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sdk-guests-")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	moduleRoot, err = filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// guestWasm builds the guest in dir (relative to the module root) once per
// test binary, exactly as sdk/build_guests.sh does, and returns its bytes.
func guestWasm(t testing.TB, dir string) []byte {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go toolchain to build guests: %v", err)
	}
	buildsMu.Lock()
	b := builds[dir]
	if b == nil {
		b = &build{}
		builds[dir] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		outFile := filepath.Join(buildDir, strings.ReplaceAll(dir, "/", "_")+".wasm")
		cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-o", outFile, "./"+dir)
		cmd.Dir = moduleRoot
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", dir, err, msg)
			return
		}
		b.wasm, b.err = os.ReadFile(outFile)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.wasm
}

// newRuntime returns a runtime with WASI. The interpreter compiles a Go
// guest ~10x faster than the compiler, which matters most under -race; only
// the long-running memory test uses the compiler.
func newRuntime(t testing.TB, compiler bool) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfigInterpreter()
	if compiler {
		cfg = wazero.NewRuntimeConfigCompiler()
	}
	// No WithCloseOnContextDone: it starts a goroutine per call (~0.7 µs),
	// and these tests never cancel a call.
	r := wazero.NewRuntimeWithConfig(ctx, cfg.WithCompilationCache(wasmCache).WithMemoryLimitPages(1024))
	t.Cleanup(func() { _ = r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	return r
}

func TestGuestExports(t *testing.T) {
	for _, g := range guests {
		t.Run(g.dir, func(t *testing.T) {
			t.Parallel()
			r := newRuntime(t, false)
			cm, err := r.CompileModule(context.Background(), guestWasm(t, g.dir))
			if err != nil {
				t.Fatal(err)
			}
			exports := cm.ExportedFunctions()
			for name, want := range guestExports {
				def, ok := exports[name]
				if name == "run" && !g.runLoop {
					if ok {
						t.Errorf("exports run, but is not a run-loop capsule")
					}
					continue
				}
				if !ok {
					t.Errorf("missing export %s", name)
					continue
				}
				if got := (sig{def.ParamTypes(), def.ResultTypes()}); got.String() != want.String() {
					t.Errorf("export %s: signature %s, want %s", name, got, want)
				}
			}
			if _, ok := cm.ExportedMemories()["memory"]; !ok {
				t.Errorf("missing memory export")
			}
			if _, ok := exports["_start"]; ok {
				t.Errorf("exports _start: not built as a reactor")
			}
			for _, def := range cm.ImportedFunctions() {
				mod, name, _ := def.Import()
				switch mod {
				case "wasi_snapshot_preview1":
				case "astrid_v1":
					want, ok := hostFunctions[name]
					if !ok {
						t.Errorf("imports unknown host function astrid_v1.%s", name)
						continue
					}
					if got := (sig{def.ParamTypes(), def.ResultTypes()}); got.String() != want.String() {
						t.Errorf("import astrid_v1.%s: signature %s, want %s", name, got, want)
					}
				default:
					t.Errorf("imports %s.%s from an unknown module", mod, name)
				}
			}
		})
	}
}

// TestABIGuestImportsEveryHostFunction proves the abi test guest reaches
// every host function, so host tests driving it cover the whole ABI.
func TestABIGuestImportsEveryHostFunction(t *testing.T) {
	r := newRuntime(t, false)
	cm, err := r.CompileModule(context.Background(), guestWasm(t, "capsule/testdata/guests/abi"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, def := range cm.ImportedFunctions() {
		if mod, name, _ := def.Import(); mod == "astrid_v1" {
			got[name] = true
		}
	}
	for name := range hostFunctions {
		if !got[name] {
			t.Errorf("abi guest does not import astrid_v1.%s", name)
		}
	}
}

// scriptedHost is an astrid_v1 module for driving guests in these tests.
// Every function returns -internal unless the test scripts it; result_read
// returns the detail "scripted host" (or what a script put in slot).
type scriptedHost struct {
	mu      sync.Mutex
	scripts map[string]api.GoModuleFunc
	slot    []byte
	logs    []string
}

const codeInternal = 12

func newScriptedHost(scripts map[string]api.GoModuleFunc) *scriptedHost {
	return &scriptedHost{scripts: scripts, slot: []byte("scripted host")}
}

func (h *scriptedHost) instantiate(t testing.TB, r wazero.Runtime) {
	t.Helper()
	b := r.NewHostModuleBuilder("astrid_v1")
	for name, s := range hostFunctions {
		fn := h.scripts[name]
		switch {
		case fn != nil:
		case name == "result_read":
			fn = h.resultRead
		case name == "sys_log":
			fn = h.sysLog
		default:
			fn = func(_ context.Context, _ api.Module, stack []uint64) {
				stack[0] = api.EncodeI64(-codeInternal)
			}
		}
		b.NewFunctionBuilder().WithGoModuleFunction(fn, s.params, s.results).Export(name)
	}
	if _, err := b.Instantiate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (h *scriptedHost) setSlot(b []byte) {
	h.mu.Lock()
	h.slot = b
	h.mu.Unlock()
}

func (h *scriptedHost) resultRead(_ context.Context, m api.Module, stack []uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ptr, capacity := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if int(capacity) < len(h.slot) {
		stack[0] = api.EncodeI64(-9)
		return
	}
	if !m.Memory().Write(ptr, h.slot) {
		stack[0] = api.EncodeI64(-2)
		return
	}
	stack[0] = api.EncodeI64(int64(len(h.slot)))
}

func (h *scriptedHost) sysLog(_ context.Context, m api.Module, stack []uint64) {
	level := api.DecodeI32(stack[0])
	msg, ok := m.Memory().Read(api.DecodeU32(stack[1]), api.DecodeU32(stack[2]))
	if !ok {
		stack[0] = api.EncodeI64(-2)
		return
	}
	h.mu.Lock()
	h.logs = append(h.logs, fmt.Sprintf("%d %s", level, msg))
	h.mu.Unlock()
	stack[0] = 0
}

func (h *scriptedHost) logged() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// instance is one instantiated guest.
type instance struct {
	t      testing.TB
	mod    api.Module
	stderr *bytes.Buffer
	fns    map[string]api.Function // ExportedFunction allocates a call engine: reuse it
}

func instantiate(t testing.TB, dir string, h *scriptedHost) *instance {
	t.Helper()
	return instantiateWith(t, dir, h, false)
}

func instantiateWith(t testing.TB, dir string, h *scriptedHost, compiler bool) *instance {
	t.Helper()
	r := newRuntime(t, compiler)
	if h == nil {
		h = newScriptedHost(nil)
	}
	h.instantiate(t, r)
	var stderr bytes.Buffer
	mod, err := r.InstantiateWithConfig(context.Background(), guestWasm(t, dir),
		wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithStderr(&stderr))
	if err != nil {
		t.Fatalf("instantiate %s: %v\nstderr: %s", dir, err, stderr.String())
	}
	return &instance{t: t, mod: mod, stderr: &stderr, fns: map[string]api.Function{}}
}

func (in *instance) call(name string, args ...uint64) ([]uint64, error) {
	fn := in.fns[name]
	if fn == nil {
		fn = in.mod.ExportedFunction(name)
		in.fns[name] = fn
	}
	return fn.Call(context.Background(), args...)
}

func (in *instance) mustCall(name string, args ...uint64) []uint64 {
	in.t.Helper()
	res, err := in.call(name, args...)
	if err != nil {
		in.t.Fatalf("%s: %v\nstderr: %s", name, err, in.stderr.String())
	}
	return res
}

// buffer asks the guest for an exchange buffer of size bytes.
func (in *instance) buffer(size int) uint32 {
	in.t.Helper()
	return api.DecodeU32(in.mustCall("astrid_buffer", uint64(size))[0])
}

// result reads the guest-owned (ptr << 32) | len result.
func (in *instance) result(packed uint64) []byte {
	in.t.Helper()
	ptr, n := uint32(packed>>32), uint32(packed)
	if n == 0 {
		return []byte{}
	}
	b, ok := in.mod.Memory().Read(ptr, n)
	if !ok {
		in.t.Fatalf("result (%#x, %d) outside guest memory", ptr, n)
	}
	return bytes.Clone(b)
}

// trigger delivers one message as the host does: action then payload in the
// exchange buffer, then astrid_hook_trigger.
func (in *instance) trigger(action string, payload []byte) []byte {
	in.t.Helper()
	base := in.buffer(len(action) + len(payload))
	if !in.mod.Memory().WriteString(base, action) || !in.mod.Memory().Write(base+uint32(len(action)), payload) {
		in.t.Fatal("write exchange buffer")
	}
	res := in.mustCall("astrid_hook_trigger",
		uint64(base), uint64(len(action)), uint64(base)+uint64(len(action)), uint64(len(payload)))
	return in.result(res[0])
}

func TestGuestHookTrigger(t *testing.T) {
	big := bytes.Repeat([]byte(`"x"`), 100_000) // forces astrid_buffer to grow
	tests := []struct {
		name    string
		dir     string
		action  string
		payload []byte
		want    []byte
	}{
		{"echo final", "examples/echo", "echo", []byte(`{"hi":1}`), []byte("\x01{\"hi\":1}")},
		{"echo empty payload", "examples/echo", "echo", nil, []byte{0x01}},
		{"echo large payload", "examples/echo", "echo", big, append([]byte{0x01}, big...)},
		{"unknown action denied", "examples/echo", "nope", []byte(`{}`), []byte("\x02unknown hook action: nope")},
		{"reply json", "capsule/testdata/guests/trap", "ok", nil, []byte("\x01\"ok\"")},
		{"crashon echoes", "capsule/testdata/guests/crashon", "handle", []byte(`{"crash":false}`), []byte("\x01{\"crash\":false}")},
		// counter's KV calls fail on the scripted host, so the handler fails.
		{"handler failure", "examples/counter", "increment", []byte(`{}`), []byte("\x03astrid: internal: scripted host")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := instantiate(t, tt.dir, nil)
			if got := in.trigger(tt.action, tt.payload); !bytes.Equal(got, tt.want) {
				t.Errorf("result %.80q, want %.80q", got, tt.want)
			}
		})
	}
}

func TestGuestLifecycleHooks(t *testing.T) {
	tests := []struct {
		name       string
		dir        string
		kvSet      int64 // kv_set return value
		wantResult []byte
	}{
		{"no hooks registered", "examples/echo", -codeInternal, []byte{}},
		{"hooks succeed", "capsule/testdata/guests/abi", 0, []byte{}},
		{"hooks fail", "capsule/testdata/guests/abi", -codeInternal, []byte("\x03astrid: internal: scripted host")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			h := newScriptedHost(map[string]api.GoModuleFunc{
				"kv_set": func(_ context.Context, m api.Module, stack []uint64) {
					k, _ := m.Memory().Read(api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
					v, _ := m.Memory().Read(api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))
					keys = append(keys, string(k)+"="+string(v))
					stack[0] = api.EncodeI64(tt.kvSet)
				},
			})
			in := instantiate(t, tt.dir, h)
			if got := in.result(in.mustCall("astrid_install")[0]); !bytes.Equal(got, tt.wantResult) {
				t.Errorf("install: %q, want %q", got, tt.wantResult)
			}
			base := in.buffer(5)
			in.mod.Memory().WriteString(base, "0.0.9")
			if got := in.result(in.mustCall("astrid_upgrade", uint64(base), 5)[0]); !bytes.Equal(got, tt.wantResult) {
				t.Errorf("upgrade: %q, want %q", got, tt.wantResult)
			}
			if tt.dir == "capsule/testdata/guests/abi" {
				if want := []string{"installed=yes", "upgraded_from=0.0.9"}; !slices.Equal(keys, want) {
					t.Errorf("kv_set calls %q, want %q", keys, want)
				}
			}
		})
	}
}

// TestGuestResultRead proves the SDK fetches a result larger than its out
// buffer with result_read: the abi guest's config action reads a 100,000-byte
// config value.
func TestGuestResultRead(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 100_000)
	var h *scriptedHost
	h = newScriptedHost(map[string]api.GoModuleFunc{
		"sys_get_config": func(_ context.Context, _ api.Module, stack []uint64) {
			if api.DecodeU32(stack[3]) >= uint32(len(value)) {
				panic("out buffer already large enough: the test proves nothing")
			}
			h.setSlot(value)
			stack[0] = api.EncodeI64(int64(len(value)))
		},
	})
	in := instantiate(t, "capsule/testdata/guests/abi", h)
	got := in.trigger("config", []byte(`{"key":"big"}`))
	want := fmt.Sprintf("\x01{\"found\":true,\"ok\":true,\"value\":%q}", value)
	if string(got) != want {
		t.Errorf("reply %.60q... (%d bytes), want %d bytes", got, len(got), len(want))
	}
}

func TestGuestHostErrors(t *testing.T) {
	tests := []struct {
		name   string
		action string
		input  string
		ret    int64 // what kv_get returns
		slot   string
		want   string
	}{
		{"not found", "kv_get", `{"key":"k"}`, -8, "no such key", `{"detail":"no such key","err":"not-found","ok":false}`},
		{"capability denied", "kv_get", `{"key":"k"}`, -1, "", `{"detail":"","err":"capability-denied","ok":false}`},
		{"unknown code", "kv_get", `{"key":"k"}`, -99, "x", `{"detail":"x","err":"code(99)","ok":false}`},
		{"config not found is not an error", "config", `{"key":"k"}`, -8, "unset", `{"found":false,"ok":true,"value":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h *scriptedHost
			fail := func(_ context.Context, _ api.Module, stack []uint64) {
				h.setSlot([]byte(tt.slot))
				stack[0] = api.EncodeI64(tt.ret)
			}
			h = newScriptedHost(map[string]api.GoModuleFunc{"kv_get": fail, "sys_get_config": fail})
			in := instantiate(t, "capsule/testdata/guests/abi", h)
			if got := in.trigger(tt.action, []byte(tt.input)); string(got) != "\x01"+tt.want {
				t.Errorf("reply %q, want %q", got, "\x01"+tt.want)
			}
		})
	}
}

// TestGuestMemoryStaysFlat drives a handler that allocates 16 KiB of garbage
// on every call and never blocks. The SDK's periodic yield must let the guest
// GC run and keep linear memory bounded (perf-baseline pitfall 9): it
// plateaus at ~12 MiB here. Without the yield this guest exhausts its 64 MiB
// within a few thousand calls and traps.
func TestGuestMemoryStaysFlat(t *testing.T) {
	if raceEnabled {
		t.Skip("slow under -race, and the guest's GC does not depend on the race detector")
	}
	calls := 100_000
	if testing.Short() {
		calls = 20_000
	}
	const ceiling = 24 << 20
	in := instantiateWith(t, "capsule/testdata/guests/abi", nil, true)
	payload := []byte(`{"kib":16}`)
	for range calls {
		in.trigger("garbage", payload)
	}
	size := in.mod.Memory().Size()
	t.Logf("linear memory %d KiB after %d calls (%d MiB of garbage)", size>>10, calls, calls*16>>10)
	if size > ceiling {
		t.Errorf("linear memory grew to %d KiB over %d calls, want at most %d KiB", size>>10, calls, ceiling>>10)
	}
}

func TestGuestRunLoop(t *testing.T) {
	envelope := []byte(`{"handle":1,"topic":"ticker.v1.in","payload":{"n":1},"principal":"alice",` +
		`"attribution":"claimed","source_id":"","seq":7,"ts":"2026-12-04T20:00:00.000Z","action":"","has_reply":false}`)

	t.Run("ticker relays and ends normally on cancel", func(t *testing.T) {
		var published []string
		var recvs int
		var h *scriptedHost
		h = newScriptedHost(map[string]api.GoModuleFunc{
			"ipc_subscribe": func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 1 },
			"sys_signal_ready": func(_ context.Context, _ api.Module, stack []uint64) {
				stack[0] = 0
			},
			"ipc_recv": func(_ context.Context, m api.Module, stack []uint64) {
				recvs++
				if int64(stack[0]) != 1 {
					stack[0] = api.EncodeI64(-8)
					return
				}
				switch recvs {
				case 1:
					stack[0] = api.EncodeI64(-6) // timeout: the loop goes on
				case 2:
					m.Memory().Write(api.DecodeU32(stack[2]), envelope)
					stack[0] = api.EncodeI64(int64(len(envelope)))
				default:
					h.setSlot([]byte("stopping"))
					stack[0] = api.EncodeI64(-7) // cancelled
				}
			},
			"ipc_publish": func(_ context.Context, m api.Module, stack []uint64) {
				topic, _ := m.Memory().Read(api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
				payload, _ := m.Memory().Read(api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))
				published = append(published, string(topic)+" "+string(payload))
				stack[0] = 0
			},
		})
		in := instantiate(t, "examples/ticker", h)
		in.mustCall("run")
		if want := []string{`ticker.v1.out {"n":1}`}; !slices.Equal(published, want) {
			t.Errorf("published %q, want %q", published, want)
		}
		if recvs != 3 {
			t.Errorf("%d recv calls, want 3", recvs)
		}
	})

	t.Run("error return logs and traps", func(t *testing.T) {
		h := newScriptedHost(nil) // sys_signal_ready fails with internal
		in := instantiate(t, "capsule/testdata/guests/exit", h)
		_, err := in.call("run")
		if err == nil {
			t.Fatal("run returned normally, want a trap")
		}
		var exit *sys.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("run exited with %v, want a trap", err)
		}
		want := "4 sdk: run loop failed: astrid: internal: scripted host"
		if logs := h.logged(); !slices.Contains(logs, want) {
			t.Errorf("logs %q, want %q", logs, want)
		}
	})

	t.Run("nil return is a normal end", func(t *testing.T) {
		h := newScriptedHost(map[string]api.GoModuleFunc{
			"sys_signal_ready": func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 0 },
		})
		in := instantiate(t, "capsule/testdata/guests/exit", h)
		in.mustCall("run")
	})

	t.Run("panic traps", func(t *testing.T) {
		in := instantiate(t, "capsule/testdata/guests/crashloop", nil)
		if _, err := in.call("run"); err == nil {
			t.Fatal("run returned normally, want a trap")
		}
		if !strings.Contains(in.stderr.String(), "crashloop guest: crash") {
			t.Errorf("stderr %q lacks the panic message", in.stderr.String())
		}
	})
}

func TestGuestPanicTraps(t *testing.T) {
	in := instantiate(t, "capsule/testdata/guests/trap", nil)
	base := in.buffer(4)
	in.mod.Memory().WriteString(base, "boom")
	if _, err := in.call("astrid_hook_trigger", uint64(base), 4, uint64(base)+4, 0); err == nil {
		t.Fatal("boom returned normally, want a trap")
	}
	if !strings.Contains(in.stderr.String(), "trap guest: boom") {
		t.Errorf("stderr %q lacks the panic message", in.stderr.String())
	}
}

func TestGuestExitCode(t *testing.T) {
	in := instantiate(t, "capsule/testdata/guests/exitcode", nil)
	base := in.buffer(4)
	in.mod.Memory().WriteString(base, "exit")
	_, err := in.call("astrid_hook_trigger", uint64(base), 4, uint64(base)+4, 0)
	var exit *sys.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("exit: err %v, want exit code 3", err)
	}
}

// TestGuestBadExchangeRange proves a host passing a range outside the
// exchange buffer makes the guest trap rather than read arbitrary memory.
func TestGuestBadExchangeRange(t *testing.T) {
	in := instantiate(t, "examples/echo", nil)
	base := in.buffer(16)
	in.mod.Memory().WriteString(base, "echo")
	if _, err := in.call("astrid_hook_trigger", uint64(base), 4, 8, 4); err == nil {
		t.Fatal("trigger with a payload outside the exchange buffer returned normally")
	}
	if !strings.Contains(in.stderr.String(), "outside the exchange buffer") {
		t.Errorf("stderr %q lacks the reason", in.stderr.String())
	}
}
