package capsule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// ModuleName is the import module name of host ABI v1 (docs/abi.md).
const ModuleName = "astrid_v1"

// DefaultMemoryPages is the default linear-memory cap: 1024 pages = 64 MiB.
const DefaultMemoryPages = 1024

// Errors returned by the engine.
var (
	// ErrClosed is returned by calls on a closed engine or instance.
	ErrClosed = errors.New("capsule: closed")
	// ErrBadModule wraps every reason a wasm binary cannot be used as a
	// capsule (compile failure, unknown imports, missing exports).
	ErrBadModule = errors.New("capsule: bad module")
)

// EngineConfig configures an Engine. The zero value is usable: an
// in-memory compilation cache and a disabled logger.
type EngineConfig struct {
	// CacheDir holds wazero's on-disk compilation cache, so a node restart
	// compiles nothing. Empty means an in-memory cache.
	CacheDir string
	// Logger receives engine-level events.
	Logger zerolog.Logger
}

// Engine compiles capsule modules and hands out instances. There is one
// Engine per process: one compilation cache shared by every runtime, and
// one wazero runtime per memory-limit class (wazero's memory limit is a
// runtime setting), each with WASI preview1 and the astrid_v1 host module.
//
// # Concurrency
//
// Goroutine-safe. The Engine owns its runtimes and compiled modules; it
// closes them in Close.
type Engine struct {
	cache wazero.CompilationCache
	log   zerolog.Logger

	mu      sync.Mutex
	classes map[uint32]*runtimeClass
	closed  bool
}

type runtimeClass struct {
	pages   uint32
	rt      wazero.Runtime
	mu      sync.Mutex
	modules map[string]*Module
}

// NewEngine creates the process-wide engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("capsule: compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("capsule: compilation cache: %w", err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	return &Engine{cache: cache, log: cfg.Logger, classes: map[uint32]*runtimeClass{}}, nil
}

// Close closes every runtime (and so every instance) and the cache.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	for _, c := range e.classes {
		errs = append(errs, c.rt.Close(ctx))
	}
	errs = append(errs, e.cache.Close(ctx))
	return errors.Join(errs...)
}

func (e *Engine) class(ctx context.Context, pages uint32) (*runtimeClass, error) {
	if pages == 0 {
		pages = DefaultMemoryPages
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if c := e.classes[pages]; c != nil {
		return c, nil
	}
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("capsule: wasi: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("capsule: host module: %w", err)
	}
	c := &runtimeClass{pages: pages, rt: rt, modules: map[string]*Module{}}
	e.classes[pages] = c
	return c, nil
}

// Exports describes which optional guest exports a module has; their
// presence decides what kind of capsule it is (docs/abi.md).
type Exports struct {
	Initialize  bool // _initialize (Go reactors)
	Buffer      bool // astrid_buffer
	HookTrigger bool // astrid_hook_trigger: interceptor handlers
	HookBatch   bool // astrid_hook_batch: interceptor handlers that take queued messages in one call
	Run         bool // run: run-loop capsule
	Install     bool // astrid_install
	Upgrade     bool // astrid_upgrade
}

// Module is a compiled capsule module within one memory class.
//
// # Concurrency
//
// Goroutine-safe and immutable; instances created from it are not.
type Module struct {
	class   *runtimeClass
	code    wazero.CompiledModule
	hash    string
	exports Exports
}

// Hash returns the hex SHA-256 of the wasm binary.
func (m *Module) Hash() string { return m.hash }

// Exports returns the detected guest exports.
func (m *Module) Exports() Exports { return m.exports }

// MemoryPages returns the memory cap of the module's class.
func (m *Module) MemoryPages() uint32 { return m.class.pages }

// Hash returns the hex SHA-256 of a wasm binary, the key under which the
// node records installed versions.
func Hash(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

var hostSignatures = hostFunctionSignatures()

// Compile compiles wasm for the memory class of pages (0 = default), once
// per distinct binary and class; later calls return the cached Module.
func (e *Engine) Compile(ctx context.Context, wasm []byte, pages uint32) (*Module, error) {
	c, err := e.class(ctx, pages)
	if err != nil {
		return nil, err
	}
	h := Hash(wasm)
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.modules[h]; m != nil {
		return m, nil
	}
	code, err := c.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: compile: %v", ErrBadModule, err)
	}
	if err := checkImports(c.rt, code); err != nil {
		_ = code.Close(ctx)
		return nil, err
	}
	m := &Module{class: c, code: code, hash: h, exports: detectExports(code)}
	if m.exports.HookTrigger && !m.exports.Buffer {
		_ = code.Close(ctx)
		return nil, fmt.Errorf("%w: exports astrid_hook_trigger without astrid_buffer", ErrBadModule)
	}
	c.modules[h] = m
	return m, nil
}

func detectExports(code wazero.CompiledModule) Exports {
	fns := code.ExportedFunctions()
	has := func(name string, params, results []api.ValueType) bool {
		d, ok := fns[name]
		if !ok {
			return false
		}
		return equalTypes(d.ParamTypes(), params) && equalTypes(d.ResultTypes(), results)
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	return Exports{
		Initialize:  has("_initialize", nil, nil),
		Buffer:      has("astrid_buffer", []api.ValueType{i32}, []api.ValueType{i32}),
		HookTrigger: has("astrid_hook_trigger", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64}),
		HookBatch:   has("astrid_hook_batch", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64}),
		Run:         has("run", nil, nil),
		Install:     has("astrid_install", nil, []api.ValueType{i64}),
		Upgrade:     has("astrid_upgrade", []api.ValueType{i32, i32}, []api.ValueType{i64}),
	}
}

func equalTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkImports refuses modules importing anything but functions of WASI
// preview1 and astrid_v1 that the runtime really provides, with their exact
// signatures, and modules without a "memory" export (every host function
// reads and writes it), so a bad capsule is reported at load time with a
// clear reason instead of at instantiation or at its first host call.
func checkImports(rt wazero.Runtime, code wazero.CompiledModule) error {
	var errs []error
	provided := map[string]map[string]api.FunctionDefinition{}
	for _, name := range []string{ModuleName, wasi_snapshot_preview1.ModuleName} {
		if m := rt.Module(name); m != nil {
			provided[name] = m.ExportedFunctionDefinitions()
		}
	}
	for _, f := range code.ImportedFunctions() {
		mod, name, _ := f.Import()
		fns, known := provided[mod]
		if !known {
			errs = append(errs, fmt.Errorf("%w: imports from unknown module %q (only %s and %s exist)",
				ErrBadModule, mod, ModuleName, wasi_snapshot_preview1.ModuleName))
			continue
		}
		def, ok := fns[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: imports unknown host function %s.%s", ErrBadModule, mod, name))
			continue
		}
		if !equalTypes(f.ParamTypes(), def.ParamTypes()) || !equalTypes(f.ResultTypes(), def.ResultTypes()) {
			errs = append(errs, fmt.Errorf("%w: host function %s.%s imported with the wrong signature", ErrBadModule, mod, name))
		}
	}
	for _, m := range code.ImportedMemories() {
		mod, name, _ := m.Import()
		errs = append(errs, fmt.Errorf("%w: imports memory %s.%s; a capsule must define its own", ErrBadModule, mod, name))
	}
	if _, ok := code.ExportedMemories()["memory"]; !ok {
		errs = append(errs, fmt.Errorf("%w: does not export its linear memory as \"memory\"", ErrBadModule))
	}
	return errors.Join(errs...)
}
