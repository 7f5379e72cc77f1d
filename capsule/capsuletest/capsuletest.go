// Package capsuletest builds Go guest capsules from source for tests, the
// way wazero's own tests build wasip1 guests: once per test binary, with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package capsuletest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string]*entry{}
)

type entry struct {
	once sync.Once
	wasm []byte
	path string
	err  error
	out  string
}

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles the guest package at dir (relative to the repo root,
// e.g. "examples/echo" or "capsule/testdata/guests/trap") and returns the
// path of the .wasm (in a temp dir shared by the test binary) and its bytes.
func Build(t testing.TB, dir string) (string, []byte) {
	t.Helper()
	mu.Lock()
	e := built[dir]
	if e == nil {
		e = &entry{}
		built[dir] = e
	}
	mu.Unlock()
	e.once.Do(func() {
		root := RepoRoot(t)
		outDir, err := os.MkdirTemp("", "astrid-guest-")
		if err != nil {
			e.err = err
			return
		}
		e.path = filepath.Join(outDir, filepath.Base(dir)+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", e.path, "./"+filepath.ToSlash(dir))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		e.err = cmd.Run()
		e.out = out.String()
		if e.err == nil {
			e.wasm, e.err = os.ReadFile(e.path)
		}
	})
	if e.err != nil {
		t.Fatalf("build guest %s: %v\n%s", dir, e.err, e.out)
	}
	return e.path, e.wasm
}

// CapsuleDir builds the guest at dir and returns a temporary capsule
// directory holding a copy of dir's Capsule.toml and the built .wasm under
// the file name the manifest's [[component]] expects (wasmName).
func CapsuleDir(t testing.TB, dir, wasmName string) string {
	t.Helper()
	_, wasm := Build(t, dir)
	root := RepoRoot(t)
	manifest, err := os.ReadFile(filepath.Join(root, dir, "Capsule.toml"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(dir))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "Capsule.toml"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, wasmName), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
