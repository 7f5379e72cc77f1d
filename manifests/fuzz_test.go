package manifests_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/astrid-go/astrid/manifests"
)

// FuzzParse: Parse never panics, always returns a manifest, reports
// positions inside the input, keeps err consistent with the diagnostics,
// is deterministic, and whatever parses without errors round-trips through
// Encode -> Parse to an equal manifest. Seeds: testdata/{valid,invalid},
// the reference corpus and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.toml"))
	more, _ := filepath.Glob(filepath.Join(referenceDir(f), "*", "Capsule.toml"))
	for _, fn := range append(files, more...) {
		data, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, diags, err := manifests.Parse("Capsule.toml", data)
		if m == nil {
			t.Fatal("nil manifest")
		}
		lines := strings.Count(string(data), "\n") + 1
		var errs []manifests.Diagnostic
		for _, d := range diags {
			if strings.Contains(d.Msg, "internal error") {
				t.Fatalf("parser bug: %s\ninput:\n%s", d, data)
			}
			if d.Line < 1 || d.Col < 1 || d.Line > lines {
				t.Fatalf("position out of range (%d lines): %s", lines, d)
			}
			if d.IsError() {
				errs = append(errs, d)
			}
		}
		if (err != nil) != (len(errs) > 0) {
			t.Fatalf("err = %v with %d error diagnostics", err, len(errs))
		}
		if err != nil {
			var ve *manifests.ValidationError
			if !errors.Is(err, manifests.ErrInvalid) || !errors.As(err, &ve) || len(ve.Diagnostics) != len(errs) {
				t.Fatalf("err = %#v, want *ValidationError with %d diagnostics", err, len(errs))
			}
		}
		_, diags2, _ := manifests.Parse("Capsule.toml", data)
		if a, b := renderDiagnostics(diags), renderDiagnostics(diags2); a != b {
			t.Fatalf("nondeterministic diagnostics:\n%s---\n%s", a, b)
		}
		roundTrip(t, "Capsule.toml", data)
	})
}

// FuzzEncodeStrings: arbitrary strings in every string-valued position
// (keys and values, including quotes, escapes, control characters and
// non-ASCII text) survive Encode -> Parse byte for byte, whether or not the
// resulting manifest is valid.
func FuzzEncodeStrings(f *testing.F) {
	f.Add("tool.v1.execute", "opaque", "API_KEY", "a \"quoted\" \\ value\n", "astrid", "session")
	f.Add("", "", "", "", "", "")
	f.Add("a.b", "\x00\x7f\u00e9\U0001F600", "key with spaces", "'''", "ns-1", "x:y")
	f.Add("\t", "\"\"\"", "é", "\\u0041", "[x]", "#")
	f.Fuzz(func(t *testing.T, topic, wit, envName, text, ns, iface string) {
		for _, s := range []string{topic, wit, envName, text, ns, iface} {
			if !utf8.ValidString(s) {
				return // TOML documents are UTF-8
			}
		}
		m := &manifests.Manifest{
			File:        "Capsule.toml",
			Package:     manifests.Package{Name: text, VersionRaw: text, Description: text, Authors: []string{text, wit}},
			Components:  []manifests.Component{{ID: text, File: text, Type: text}},
			Publish:     []manifests.PublishEntry{{Topic: topic, Wit: wit}},
			Subscribe:   []manifests.SubscribeEntry{{Topic: topic, Wit: wit, Handler: text, Priority: 100}},
			Imports:     []manifests.Import{{Namespace: ns, Interface: iface, RequirementRaw: text}},
			Env:         []manifests.EnvVar{{Name: envName, Type: "text", Request: text, Default: text, EnumValues: []string{wit}}},
			Commands:    []manifests.Command{{Name: text, Kind: "cli", Description: wit}},
			Limits:      manifests.DefaultLimits(),
			Supervision: manifests.DefaultSupervision(),
		}
		enc, err := manifests.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, diags, _ := manifests.Parse("Capsule.toml", enc)
		for _, d := range diags {
			if strings.HasPrefix(d.Msg, "TOML syntax error") || strings.Contains(d.Msg, "internal error") {
				t.Fatalf("Encode produced unparsable TOML: %s\n%s", d, enc)
			}
		}
		checks := []struct{ name, got, want string }{
			{"package.name", got.Package.Name, text},
			{"package.version", got.Package.VersionRaw, text},
			{"package.description", got.Package.Description, text},
			{"publish topic", first(got.PublishTopics()), topic},
			{"subscribe topic", first(got.SubscribeTopics()), topic},
		}
		if len(got.Publish) == 1 {
			checks = append(checks, struct{ name, got, want string }{"publish wit", got.Publish[0].Wit, wit})
		}
		if len(got.Subscribe) == 1 {
			checks = append(checks, struct{ name, got, want string }{"subscribe handler", got.Subscribe[0].Handler, text})
		}
		if len(got.Env) == 1 {
			checks = append(checks, struct{ name, got, want string }{"env name", got.Env[0].Name, envName},
				struct{ name, got, want string }{"env request", got.Env[0].Request, text})
		}
		if len(got.Components) == 1 {
			checks = append(checks, struct{ name, got, want string }{"component file", got.Components[0].File, text})
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Fatalf("%s: got %q, want %q\n%s", c.name, c.got, c.want, enc)
			}
		}
		if len(got.Env) != 1 || len(got.Publish) != 1 || len(got.Subscribe) != 1 || len(got.Components) != 1 {
			t.Fatalf("entries lost: %+v\n%s", got, enc)
		}
	})
}

func first(xs []string) string {
	if len(xs) == 0 {
		return "<none>"
	}
	return xs[0]
}
