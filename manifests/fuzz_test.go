package manifests_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
