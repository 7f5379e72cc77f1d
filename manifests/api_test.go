package manifests_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/manifests"
)

func TestValidateCapsuleID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr bool
	}{
		{"astrid-capsule-react", false},
		{"a", false},
		{"0-9", false},
		{"-leading-hyphen", false},
		{"", true},
		{"Upper", true},
		{"under_score", true},
		{"dot.ted", true},
		{"space d", true},
		{"ümlaut", true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := manifests.ValidateCapsuleID(tt.id)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidateCapsuleID(%q) = %v, wantErr %v", tt.id, err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "manifests: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestValidatePrincipalID(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr bool
	}{
		{"default", "default", false},
		{"mixed", "Alice_01-x", false},
		{"max length", strings.Repeat("a", 64), false},
		{"too long", strings.Repeat("a", 65), true},
		{"empty", "", true},
		{"dot", "a.b", true},
		{"slash", "a/b", true},
		{"space", "a b", true},
		{"nats wildcard", "*", true},
		{"unicode", "é", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := manifests.ValidatePrincipalID(tt.id); (err != nil) != tt.wantErr {
				t.Fatalf("ValidatePrincipalID(%q) = %v, wantErr %v", tt.id, err, tt.wantErr)
			}
		})
	}
}

func TestCheckTopic(t *testing.T) {
	tests := []struct {
		topic   string
		wantErr bool
	}{
		{"tool.v1.execute", false},
		{"llm.v1.stream.*", false},
		{"run-hook", false},
		{"tool.v1.execute.*.result", false},
		{"", true},
		{"a..b", true},
		{".a", true},
		{"a.", true},
		{"a b", true},
		{"a.>", true},
		{"a.\n", true},
	}
	for _, tt := range tests {
		if err := manifests.CheckTopic(tt.topic); (err != nil) != tt.wantErr {
			t.Errorf("CheckTopic(%q) = %v, wantErr %v", tt.topic, err, tt.wantErr)
		}
	}
}

func TestRenderPath(t *testing.T) {
	tests := []struct {
		elems []any
		want  string
	}{
		{[]any{"subscribe", "tool.v1.execute", "priority"}, `subscribe."tool.v1.execute".priority`},
		{[]any{"component", 0, "file"}, "component[0].file"},
		{[]any{"env", "API_KEY", "type"}, "env.API_KEY.type"},
		{[]any{"imports", "astrid:session"}, `imports."astrid:session"`},
	}
	for _, tt := range tests {
		if got := manifests.RenderPath(tt.elems...); got != tt.want {
			t.Errorf("RenderPath(%v) = %s, want %s", tt.elems, got, tt.want)
		}
	}
}

func TestDiagnosticString(t *testing.T) {
	tests := []struct {
		name string
		d    manifests.Diagnostic
		want string
	}{
		{"error", manifests.Diagnostic{File: "Capsule.toml", Line: 3, Col: 7, Path: "package.version", Msg: "bad"}, "Capsule.toml:3:7: package.version: bad"},
		{"warning", manifests.Diagnostic{File: "a/Capsule.toml", Line: 1, Col: 1, Path: "x", Severity: manifests.SeverityWarning, Msg: "unknown key"}, "a/Capsule.toml:1:1: x: warning: unknown key"},
		{"no path", manifests.Diagnostic{File: "f", Line: 2, Col: 3, Msg: "TOML syntax error: boom"}, "f:2:3: TOML syntax error: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	b, err := json.Marshal(tests[1].d)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"file":"a/Capsule.toml","line":1,"col":1,"path":"x","severity":"warning","message":"unknown key"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var back manifests.Diagnostic
	if err := json.Unmarshal(b, &back); err != nil || back != tests[1].d {
		t.Errorf("json round trip = %+v, %v", back, err)
	}
}

// TestParseCollectsAndSorts: several mistakes are all reported, sorted by
// position, and the error holds exactly the error-level ones.
func TestParseCollectsAndSorts(t *testing.T) {
	src := `[subscribe]
"b.v1" = { wit = "opaque", priority = 1 }

[package]
name = "Bad"
version = "x"
unknown = 1
`
	m, diags, err := manifests.Parse("Capsule.toml", []byte(src))
	if m == nil || m.Package.Name != "Bad" {
		t.Fatalf("manifest = %+v", m)
	}
	want := []string{
		`Capsule.toml:2:28: subscribe."b.v1".priority: priority requires handler: only interceptor bindings are ordered`,
		`Capsule.toml:5:1: package.name: invalid capsule id "Bad": only lowercase letters, digits and '-' are allowed`,
		`Capsule.toml:6:1: package.version: invalid version "x": expected semver MAJOR.MINOR.PATCH (e.g. "1.2.0")`,
		`Capsule.toml:7:1: package.unknown: warning: unknown key; ignored`,
	}
	var got []string
	for _, d := range diags {
		got = append(got, d.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var ve *manifests.ValidationError
	if !errors.Is(err, manifests.ErrInvalid) || !errors.As(err, &ve) || len(ve.Diagnostics) != 3 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "(and 2 more errors)") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestParseWarningsOnlyIsValid(t *testing.T) {
	src := "[package]\nname = \"ok\"\nversion = \"1.0.0\"\nfuture = true\n"
	_, diags, err := manifests.Parse("Capsule.toml", []byte(src))
	if err != nil || len(diags) != 1 || diags[0].Severity != manifests.SeverityWarning {
		t.Fatalf("err = %v, diags = %v", err, diags)
	}
}

func TestParseDefaultsAndSet(t *testing.T) {
	src := `[package]
name = "lim"
version = "1.0.0"

[limits]
call_timeout = "5s"

[supervision]
restart = "temporary"
backoff_multiplier = 3
`
	m, _, err := manifests.Parse("Capsule.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	l, s := m.Limits, m.Supervision
	if l.CallTimeout != 5*time.Second || !l.IsSet("call_timeout") || l.IsSet("memory_pages") || l.MemoryPages != 1024 || l.MailboxSize != 1024 || l.Overflow != "reject" {
		t.Errorf("limits = %+v", l)
	}
	if s.Restart != "temporary" || !s.IsSet("restart") || s.BackoffMultiplier != 3 || s.IsSet("within") ||
		s.Within != 60*time.Second || s.MaxRestarts != 5 || s.BackoffInitial != 100*time.Millisecond || s.BackoffMax != 30*time.Second ||
		s.OnExhausted != "quarantine" || s.ReadinessTimeout != 5*time.Second || s.OnCrash != "retry" || s.PoisonThreshold != 3 || s.ResetAfter != 60*time.Second {
		t.Errorf("supervision = %+v", s)
	}
	m2, _, _ := manifests.Parse("Capsule.toml", []byte("[package]\nname = \"x\"\nversion = \"1.0.0\"\n"))
	if m2.Limits.Set != nil || m2.Supervision.Set != nil {
		t.Errorf("Set maps allocated with nothing set: %v %v", m2.Limits.Set, m2.Supervision.Set)
	}
}

func TestParseSyntaxError(t *testing.T) {
	m, diags, err := manifests.Parse("Capsule.toml", []byte("[package]\nname = \"x\nversion = 1\n"))
	if m == nil || !errors.Is(err, manifests.ErrInvalid) || len(diags) != 1 {
		t.Fatalf("m = %v, diags = %v, err = %v", m, diags, err)
	}
	if d := diags[0]; d.Line != 2 || d.Path != "" || !strings.HasPrefix(d.Msg, "TOML syntax error: ") {
		t.Errorf("diagnostic = %+v", d)
	}
}

func TestAstridVersionRequirement(t *testing.T) {
	tests := []struct {
		req     string
		wantErr string
	}{
		{">=0.1.0", ""},
		{">=0.10.4", ""},
		{"^0.10", ""},
		{">=0.10.5", "requires Astrid >=0.10.5, but this runtime implements Astrid " + manifests.RuntimeVersion},
		{"<0.8.0", "requires Astrid <0.8.0, but this runtime implements Astrid " + manifests.RuntimeVersion},
		{"nonsense", `invalid version requirement "nonsense"`},
	}
	for _, tt := range tests {
		t.Run(tt.req, func(t *testing.T) {
			src := "[package]\nname = \"x\"\nversion = \"1.0.0\"\nastrid-version = \"" + tt.req + "\"\n"
			_, diags, err := manifests.Parse("Capsule.toml", []byte(src))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || len(diags) != 1 || !strings.Contains(diags[0].Msg, tt.wantErr) || diags[0].Path != "package.astrid-version" {
				t.Fatalf("diags = %v, want %q", diags, tt.wantErr)
			}
		})
	}
}

func TestLoadAndDiscover(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "[package]\nname = \"%s\"\nversion = \"1.0.0\"\n"
	b := write("caps/b/Capsule.toml", strings.Replace(good, "%s", "b", 1))
	a := write("caps/a/Capsule.toml", strings.Replace(good, "%s", "a", 1))
	write("caps/c/README.md", "not a capsule")
	write("caps/loose.toml", "not a capsule dir")
	other := write("single.toml", strings.Replace(good, "%s", "single", 1))
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		root    string
		want    []string
		wantErr error
	}{
		{"dir of capsule dirs", filepath.Join(root, "caps"), []string{a, b}, nil},
		{"capsule dir", filepath.Join(root, "caps", "a"), []string{a}, nil},
		{"manifest file", b, []string{b}, nil},
		{"any file name", other, []string{other}, nil},
		{"empty dir", filepath.Join(root, "empty"), nil, manifests.ErrNotFound},
		{"missing", filepath.Join(root, "nope"), nil, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := manifests.Discover(tt.root)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Discover = %v, %v; want %v", got, err, tt.want)
			}
		})
	}

	m, _, err := manifests.Load(filepath.Join(root, "caps", "a"))
	if err != nil || m.ID() != "a" || m.File != a {
		t.Fatalf("Load(dir) = %+v, %v", m, err)
	}
	if _, _, err := manifests.Load(filepath.Join(root, "empty")); !errors.Is(err, manifests.ErrNotFound) {
		t.Errorf("Load(empty dir) err = %v", err)
	}
	bad := write("bad/Capsule.toml", "[package]\nname = \"x\"\n")
	_, diags, err := manifests.Load(bad)
	if !errors.Is(err, manifests.ErrInvalid) || len(diags) != 1 || diags[0].File != bad {
		t.Errorf("Load(bad) = %v, %v", diags, err)
	}
}

// TestEncodeProgrammatic: a manifest built in code (not parsed) encodes to
// TOML that parses back to the same values.
func TestEncodeProgrammatic(t *testing.T) {
	workers := 2
	m := &manifests.Manifest{
		File:         "Capsule.toml",
		Package:      manifests.Package{Name: "built", VersionRaw: "2.0.0"},
		Components:   []manifests.Component{{ID: "main", File: "main.wasm", Type: "executable"}},
		Capabilities: manifests.Capabilities{NetBind: []string{"127.0.0.1:9000"}, BindWorkers: &workers},
		Publish:      []manifests.PublishEntry{{Topic: "a.v1.out", Wit: "opaque", Fanout: true}},
		Subscribe:    []manifests.SubscribeEntry{{Topic: "a.v1.in", Wit: "opaque", Handler: "on_in", Priority: 7, HasPriority: true}},
		Env:          []manifests.EnvVar{{Name: "N", Type: "text", Default: int64(3)}},
		Limits:       manifests.DefaultLimits(),
		Supervision:  manifests.DefaultSupervision(),
	}
	m.Limits.MemoryPages = 16
	m.Supervision.Singleton = true
	enc, err := manifests.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, diags, err := manifests.Parse("Capsule.toml", enc)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, renderDiagnostics(diags), enc)
	}
	if got.Limits.MemoryPages != 16 || !got.Limits.IsSet("memory_pages") || !got.Supervision.Singleton ||
		*got.Capabilities.BindWorkers != 2 || got.Interceptors()[0] != (manifests.Interceptor{Topic: "a.v1.in", Action: "on_in", Priority: 7}) ||
		got.Env[0].Default != int64(3) || !got.Publish[0].Fanout || got.Package.Version.String() != "2.0.0" {
		t.Errorf("parsed back = %+v\n%s", got, enc)
	}
	m.Env[0].Default = struct{}{}
	if _, err := manifests.Encode(m); err == nil || !strings.HasPrefix(err.Error(), "manifests: ") {
		t.Errorf("Encode of an unsupported default: err = %v", err)
	}
}

// TestGoldenValidRoundTrip: the valid test manifests survive Encode.
func TestGoldenValidRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.toml"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !roundTrip(t, filepath.Base(f), data) {
				t.Fatal("valid manifest did not parse")
			}
		})
	}
}

// TestLegacyTranslation checks the translated model of the legacy test
// manifests in detail.
func TestLegacyTranslation(t *testing.T) {
	m, _, err := manifests.Load(filepath.Join("testdata", "valid", "legacy_ipc.toml"))
	if err != nil {
		t.Fatal(err)
	}
	wantPub := []string{"component.v1.out", "agent.v1.response", "llm.v1.request.generate.*"}
	if !slices.Equal(m.PublishTopics(), wantPub) {
		t.Errorf("publish = %v, want %v", m.PublishTopics(), wantPub)
	}
	wantSub := []string{"session.v1.response.clear.*", "session.v1.response.get_messages.*", "user.v1.prompt", "llm.v1.stream.*", "run-hook"}
	if !slices.Equal(m.SubscribeTopics(), wantSub) {
		t.Errorf("subscribe = %v, want %v", m.SubscribeTopics(), wantSub)
	}
	wantIC := []manifests.Interceptor{
		{Topic: "llm.v1.stream.*", Action: "handle_llm_stream", Priority: 10},
		{Topic: "session.v1.response.clear.*", Action: "handle_clear", Priority: 100},
		{Topic: "user.v1.prompt", Action: "handle_user_prompt", Priority: 100},
	}
	if !slices.Equal(m.Interceptors(), wantIC) {
		t.Errorf("interceptors = %+v, want %+v", m.Interceptors(), wantIC)
	}
	if !slices.Equal(m.Capabilities.Net, []string{"api.example.org"}) {
		t.Errorf("merged net = %v", m.Capabilities.Net)
	}

	m, _, err = manifests.Load(filepath.Join("testdata", "valid", "legacy_sections.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Publish) != 1 || m.Publish[0].Wit != "hook-result" {
		t.Errorf("publish = %+v", m.Publish)
	}
	if len(m.Subscribe) != 1 || m.Subscribe[0] != (manifests.SubscribeEntry{Topic: "hook.v1.request", Wit: "schemas/request.json", Priority: 100}) {
		t.Errorf("subscribe = %+v", m.Subscribe)
	}
	d := m.Dependencies
	wantProv := []manifests.Dependency{{Kind: "topic", Name: "hook.v1.result.*"}, {Kind: "tool", Name: "search"}, {Kind: "llm", Name: "claude"}, {Kind: "uplink", Name: "discord"}}
	if d == nil || !d.ProvidesDerived || !slices.Equal(d.Provides, wantProv) || len(d.Requires) != 2 {
		t.Errorf("dependencies = %+v", d)
	}
	if m.Tools[0].DescriptionForLLM != "Search the web" || m.Env[0].Type != "text" || len(m.Connectors) != 1 || len(m.LLMProviders) != 1 || len(m.Topics) != 3 {
		t.Errorf("manifest = %+v", m)
	}
}
