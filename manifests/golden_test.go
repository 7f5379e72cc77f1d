package manifests_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/manifests"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*.golden from the current output")

// renderDiagnostics renders diagnostics one per line, as `astrid validate`
// prints them.
func renderDiagnostics(ds []manifests.Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestManifestGolden parses every testdata/{valid,invalid}/*.toml and
// compares the diagnostics with the .golden file next to it. Valid cases
// must have no error-level diagnostic; invalid ones at least one.
func TestManifestGolden(t *testing.T) {
	for _, kind := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", kind, "*.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no testdata/%s/*.toml files", kind)
		}
		for _, f := range files {
			t.Run(kind+"/"+filepath.Base(f), func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				m, diags, perr := manifests.Parse(filepath.Base(f), data)
				if m == nil {
					t.Fatal("Parse returned a nil manifest")
				}
				got := renderDiagnostics(diags)
				switch kind {
				case "valid":
					if perr != nil {
						t.Errorf("valid manifest rejected: %v\n%s", perr, got)
					}
				case "invalid":
					if perr == nil {
						t.Errorf("invalid manifest accepted:\n%s", got)
					}
				}
				golden := strings.TrimSuffix(f, ".toml") + ".golden"
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./manifests -run TestManifestGolden -update)", err)
				}
				if got != string(want) {
					t.Errorf("diagnostics differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
				}
			})
		}
	}
}

// TestDocsExample keeps the diagnostics example in docs/manifest.md true:
// the TOML block after "Example: this manifest" must produce exactly the
// text block after it.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "manifest.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "Example: this manifest")
	if i < 0 {
		t.Fatal("docs/manifest.md has no diagnostics example")
	}
	block := func(s, fence string) (string, string) {
		start := strings.Index(s, fence)
		if start < 0 {
			t.Fatalf("no %s block", fence)
		}
		s = s[start+len(fence):]
		end := strings.Index(s, "```")
		return s[:end], s[end+3:]
	}
	src, rest := block(s[i:], "```toml\n")
	want, _ := block(rest, "```text\n")
	_, diags, _ := manifests.Parse("Capsule.toml", []byte(src))
	if got := renderDiagnostics(diags); got != want {
		t.Errorf("docs example is stale\n--- got\n%s--- docs\n%s", got, want)
	}
}
