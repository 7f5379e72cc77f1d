package manifests_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/astrid-go/astrid/manifests"
)

// referenceDir is the corpus of real Capsule.toml files:
// $ASTRID_REFERENCE_DIR, or ../../shared/reference/manifests.
func referenceDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ASTRID_REFERENCE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "reference", "manifests")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("reference manifest corpus not found at %s (set ASTRID_REFERENCE_DIR): %v", dir, err)
	}
	return dir
}

// referenceManifests parses every corpus manifest, failing the test on any
// error-level diagnostic. The map key is the corpus directory name.
func referenceManifests(t *testing.T) map[string]*manifests.Manifest {
	t.Helper()
	paths, err := manifests.Discover(referenceDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 28 {
		t.Fatalf("found %d corpus manifests, want at least 28", len(paths))
	}
	out := make(map[string]*manifests.Manifest, len(paths))
	for _, p := range paths {
		m, diags, err := manifests.Load(p)
		for _, d := range diags {
			if d.IsError() {
				t.Errorf("%s", d)
			}
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		out[filepath.Base(filepath.Dir(p))] = m
	}
	return out
}

// TestManifestReferenceCorpus: every real manifest, current and legacy,
// parses without errors, and the legacy translation yields the expected
// current model.
func TestManifestReferenceCorpus(t *testing.T) {
	ms := referenceManifests(t)
	get := func(name string) *manifests.Manifest {
		t.Helper()
		m, ok := ms[name]
		if !ok {
			t.Fatalf("corpus manifest %s missing", name)
		}
		return m
	}

	t.Run("react-f728ae3 interceptors and requires", func(t *testing.T) {
		m := get("capsule-react-f728ae3")
		ics := m.Interceptors()
		if len(ics) != 10 {
			t.Fatalf("interceptors = %d, want 10", len(ics))
		}
		if ics[0].Topic != "user.v1.prompt" || ics[0].Action != "handle_user_prompt" || ics[0].Priority != 100 {
			t.Errorf("first interceptor = %+v", ics[0])
		}
		// 10 interceptor events + 2 ipc_subscribe patterns.
		if len(m.Subscribe) != 12 {
			t.Errorf("subscribe entries = %d, want 12", len(m.Subscribe))
		}
		if len(m.Publish) != 9 || m.Publish[0].Wit != "opaque" {
			t.Errorf("publish = %+v", m.Publish)
		}
		d := m.Dependencies
		if d == nil || len(d.Requires) != 2 || d.Requires[0] != (manifests.Dependency{Kind: "topic", Name: "identity.v1.response.ready"}) {
			t.Fatalf("dependencies = %+v", d)
		}
		if !d.ProvidesDerived || len(d.Provides) != 9 || d.Provides[0].String() != "topic:identity.v1.request.build" {
			t.Errorf("derived provides = %+v", d.Provides)
		}
	})

	t.Run("session-87dff94 explicit provides", func(t *testing.T) {
		d := get("capsule-session-87dff94").Dependencies
		if d == nil || d.ProvidesDerived || len(d.Provides) != 2 || d.Provides[1].Name != "session.v1.response.clear" {
			t.Errorf("dependencies = %+v", d)
		}
	})

	t.Run("aos-ce-7d4a6dc options_from", func(t *testing.T) {
		m := get("aos-ce-7d4a6dc")
		i := slices.IndexFunc(m.Env, func(e manifests.EnvVar) bool { return e.Name == "model" })
		if i < 0 {
			t.Fatal("env model missing")
		}
		e := m.Env[i]
		if e.Type != "select" || e.OptionsFrom == nil || e.OptionsFrom.HTTP != "{base_url}/v1/models" ||
			e.OptionsFrom.Select != "data[].id" || !slices.Equal(e.OptionsFrom.After, []string{"base_url", "api_key"}) {
			t.Errorf("env model = %+v (options_from %+v)", e, e.OptionsFrom)
		}
		names := []string{}
		for _, e := range m.Env {
			names = append(names, e.Name)
		}
		if want := []string{"base_url", "api_key", "model", "temperature", "reasoning_effort", "service_tier"}; !slices.Equal(names, want) {
			t.Errorf("env order = %v, want %v", names, want)
		}
		if len(m.Exports) != 1 || m.Exports[0].Namespace != "astrid" || m.Exports[0].Interface != "llm" || m.Exports[0].Version.String() != "1.0.0" {
			t.Errorf("exports = %+v", m.Exports)
		}
	})

	t.Run("astrid-9ed49d78 single component with entrypoint", func(t *testing.T) {
		m := get("astrid-9ed49d78")
		if len(m.Components) != 1 || m.Components[0].File != "target/wasm32-unknown-unknown/release/astrid_discord.wasm" || m.Components[0].Type != "executable" {
			t.Errorf("components = %+v", m.Components)
		}
		if len(m.Env) != 5 || m.Env[1].Type != "text" || len(m.Crons) != 2 || m.Crons[1].Schedule != "*/30 * * * * *" {
			t.Errorf("env = %+v, crons = %+v", m.Env, m.Crons)
		}
		if len(m.Uplinks) != 1 || m.Uplinks[0].Profile != "chat" || len(m.Tools) != 2 || m.Tools[0].InputSchema == nil {
			t.Errorf("uplinks = %+v, tools = %+v", m.Uplinks, m.Tools)
		}
		if len(m.Subscribe) != 1 || m.Subscribe[0].Topic != "run-hook" || m.Subscribe[0].Handler != "" {
			t.Errorf("subscribe = %+v", m.Subscribe)
		}
	})

	t.Run("aos-pet-c59eb89 priority", func(t *testing.T) {
		ics := get("aos-pet-c59eb89").Interceptors()
		if len(ics) != 16 || ics[0].Priority != 90 || ics[0].Action != "on_before_prompt_build" {
			t.Errorf("interceptors = %+v", ics)
		}
	})

	t.Run("hook-bridge-31b41fd topic wit onto ipc_publish", func(t *testing.T) {
		m := get("capsule-hook-bridge-31b41fd")
		if len(m.Publish) != 1 || m.Publish[0].Topic != "hook.v1.result.*" || m.Publish[0].Wit != "hook-result" {
			t.Errorf("publish = %+v", m.Publish)
		}
		if len(m.Interceptors()) != 16 || len(m.Topics) != 1 {
			t.Errorf("interceptors = %d, topics = %d", len(m.Interceptors()), len(m.Topics))
		}
	})

	t.Run("aos-ce-b8b4b98 imports", func(t *testing.T) {
		m := get("aos-ce-b8b4b98")
		if len(m.Imports) != 4 || m.Imports[3].Interface != "context" || !m.Imports[3].Optional || m.Imports[0].Optional {
			t.Errorf("imports = %+v", m.Imports)
		}
	})

	t.Run("react-1d5f382 nested imports", func(t *testing.T) {
		m := get("capsule-react-1d5f382")
		if len(m.Imports) != 4 || m.Imports[0].Namespace != "astrid" || m.Imports[0].Interface != "llm" || m.Imports[0].RequirementRaw != "^1.0" {
			t.Errorf("imports = %+v", m.Imports)
		}
	})

	t.Run("concurrency bind_workers", func(t *testing.T) {
		c := get("astrid-5b1c8a5f").Capabilities
		if c.BindWorkers == nil || *c.BindWorkers != 5 || !slices.Equal(c.NetBind, []string{"127.0.0.1:18231"}) {
			t.Errorf("capabilities = %+v", c)
		}
	})

	t.Run("component capabilities merged", func(t *testing.T) {
		if got := get("astrid-be476bad").Capabilities.FsRead; !slices.Equal(got, []string{"workspace://"}) {
			t.Errorf("fs_read = %v", got)
		}
		m := get("capsule-memory-4b93f20")
		if !slices.Equal(m.Capabilities.FsRead, []string{"cwd://", "home://"}) || !m.Capabilities.AllowPromptInjection {
			t.Errorf("capabilities = %+v", m.Capabilities)
		}
		if got := get("capsule-telegram-8bbd9db").Capabilities; !got.Uplink || !slices.Equal(got.Net, []string{"*"}) {
			t.Errorf("telegram capabilities = %+v", got)
		}
	})

	t.Run("consciousness-bridge", func(t *testing.T) {
		m := get("astrid-046587f0")
		if len(m.Components) != 0 || len(m.MCPServers) != 1 || len(m.Interceptors()) != 0 {
			t.Errorf("components = %d, mcp = %d, interceptors = %d", len(m.Components), len(m.MCPServers), len(m.Interceptors()))
		}
		if want := []string{"consciousness.v1.*", "consciousness.v1.control", "consciousness.v1.semantic"}; !slices.Equal(m.SubscribeTopics(), want) {
			t.Errorf("subscribe = %v, want %v", m.SubscribeTopics(), want)
		}
	})

	t.Run("current-form registry", func(t *testing.T) {
		m := get("aos-ce-18bcb92")
		if m.ID() != "astrid-capsule-registry" || !m.Capabilities.Uplink || len(m.Commands) != 1 || m.Commands[0].Kind != "cli" {
			t.Errorf("manifest = %+v", m)
		}
		if m.Subscribe[0].Topic != "registry.v1.*" || m.Subscribe[0].Wit != "TODO" {
			t.Errorf("subscribe[0] = %+v", m.Subscribe[0])
		}
	})
}

// TestManifestReferenceRoundTrip: every corpus manifest survives
// Parse -> Encode -> Parse unchanged, and encoding is stable.
func TestManifestReferenceRoundTrip(t *testing.T) {
	paths, err := manifests.Discover(referenceDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(filepath.Dir(p)), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !roundTrip(t, "Capsule.toml", data) {
				t.Fatal("corpus manifest did not parse cleanly")
			}
		})
	}
}

// roundTrip checks Parse -> Encode -> Parse gives an equal manifest and
// that encoding the result again gives the same bytes. It returns false
// (checking nothing) when data does not parse without errors.
func roundTrip(t testing.TB, name string, data []byte) bool {
	t.Helper()
	m1, _, err := manifests.Parse(name, data)
	if err != nil {
		return false
	}
	enc, err := manifests.Encode(m1)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	m2, diags, err := manifests.Parse(name, enc)
	if err != nil {
		t.Fatalf("encoded manifest rejected: %v\n%s\n--- encoded:\n%s", err, renderDiagnostics(diags), enc)
	}
	if d := diffValues(m1, m2); d != "" {
		t.Fatalf("round trip changed the manifest at %s\n--- input:\n%s\n--- encoded:\n%s", d, data, enc)
	}
	enc2, err := manifests.Encode(m2)
	if err != nil {
		t.Fatalf("Encode (2nd): %v", err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding is not stable\n--- first:\n%s\n--- second:\n%s", enc, enc2)
	}
	return true
}
