package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const locateDoc = `# comment [not.a.table]
[package]
name = "x" # trailing "comment"
[subscribe]
"tool.v1.execute" = { wit = "a", priority = 5 }
'lit.key' = "b"
[[component]]
id = "a"
[[component]]
id = "b"
capabilities = { net = ["a", "b"], fs_read = [] }
[component.extra]
multi = """
x = 1
[fake]
"""""
a.b . c = 3
arr = [ [1, 2], { x = 1 }, 'q' ]
date = 1979-05-27 07:32:00
after = 1
[[component]]
  [ env . "API KEY" ]
  type = "secret"
lit = '''
[also.fake]'''
last = "\"quoted\" \u00e9"
[imports.astrid]
session = "^1"
`

// TestLocateKeyPositions checks the positions the locator reports for
// every kind of key TOML has.
func TestLocateKeyPositions(t *testing.T) {
	if _, err := toml.Decode(locateDoc, new(map[string]any)); err != nil {
		t.Fatalf("test document is not valid TOML: %v", err)
	}
	l := locate([]byte(locateDoc))
	tests := []struct {
		path string
		want position
	}{
		{`package`, position{2, 2}},
		{`package.name`, position{3, 1}},
		{`subscribe."tool.v1.execute"`, position{5, 1}},
		{`subscribe."tool.v1.execute".wit`, position{5, 23}},
		{`subscribe."tool.v1.execute".priority`, position{5, 34}},
		{`subscribe."lit.key"`, position{6, 1}},
		{`component`, position{7, 3}},
		{`component[0]`, position{7, 3}},
		{`component[0].id`, position{8, 1}},
		{`component[1]`, position{9, 3}},
		{`component[1].capabilities.net`, position{11, 18}},
		{`component[1].capabilities.net[1]`, position{11, 30}},
		{`component[1].capabilities.fs_read`, position{11, 36}},
		{`component[1].extra`, position{12, 12}},
		{`component[1].extra.multi`, position{13, 1}},
		{`component[1].extra.a.b.c`, position{17, 7}},
		{`component[1].extra.arr[1].x`, position{18, 19}},
		{`component[1].extra.arr[2]`, position{18, 28}},
		{`component[1].extra.arr[0][1]`, position{18, 13}},
		{`component[1].extra.date`, position{19, 1}},
		{`component[1].extra.after`, position{20, 1}},
		{`component[2]`, position{21, 3}},
		{`env."API KEY"`, position{22, 11}},
		{`env."API KEY".type`, position{23, 3}},
		{`env."API KEY".lit`, position{24, 1}},
		{`env."API KEY".last`, position{26, 1}},
		{`imports.astrid.session`, position{28, 1}},
	}
	for _, tt := range tests {
		got, ok := l.pos[tt.path]
		if !ok {
			t.Errorf("%s: not located", tt.path)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: at %d:%d, want %d:%d", tt.path, got.Line, got.Col, tt.want.Line, tt.want.Col)
		}
	}
	for _, fake := range []string{"x", "fake", "also", "also.fake", "component[1].extra.x"} {
		if _, ok := l.pos[fake]; ok {
			t.Errorf("%s: located inside a string or comment", fake)
		}
	}
	if got := l.at(keyPath{}.key("component").index(1).key("nope")); got != (position{9, 3}) {
		t.Errorf("fallback to ancestor = %+v, want 9:3", got)
	}
	if got := l.at(keyPath{}.key("nowhere")); got != (position{1, 1}) {
		t.Errorf("fallback to root = %+v, want 1:1", got)
	}
}

// checkLocatorCoverage asserts that every key the TOML parser saw (index
// stripped) was located. It returns false when data is not valid TOML.
func checkLocatorCoverage(t testing.TB, data []byte) bool {
	t.Helper()
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return false
	}
	l := locate(data)
	located := make(map[string]bool, len(l.paths))
	for _, p := range l.paths {
		var plain keyPath
		for _, s := range p {
			if !s.isIdx {
				plain = plain.key(s.key)
			}
		}
		located[plain.String()] = true
	}
	for _, k := range md.Keys() {
		if len(k) > maxLocateDepth/2 {
			continue // deeper paths are deliberately not recorded
		}
		var p keyPath
		for _, s := range k {
			p = p.key(s)
		}
		if !located[p.String()] {
			t.Fatalf("key %s not located in:\n%s", p, data)
		}
	}
	return true
}

// TestLocateCoversEveryKey runs the coverage check over the test data and
// the reference corpus.
func TestLocateCoversEveryKey(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.toml"))
	ref := os.Getenv("ASTRID_REFERENCE_DIR")
	if ref == "" {
		ref = filepath.Join("..", "..", "shared", "reference", "manifests")
	}
	more, _ := filepath.Glob(filepath.Join(ref, "*", "Capsule.toml"))
	if len(more) == 0 {
		t.Fatalf("no reference manifests under %s", ref)
	}
	files = append(files, more...)
	files = append(files, "") // the locateDoc
	n := 0
	for _, f := range files {
		data := []byte(locateDoc)
		if f != "" {
			var err error
			if data, err = os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
		if checkLocatorCoverage(t, data) {
			n++
		}
	}
	if n < 40 {
		t.Fatalf("only %d documents checked", n)
	}
}

// FuzzLocate: on any input the TOML parser accepts, the locator finds every
// key, and it never panics on anything.
func FuzzLocate(f *testing.F) {
	f.Add([]byte(locateDoc))
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.toml"))
	for _, fn := range files {
		if data, err := os.ReadFile(fn); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		locate(data) // must not panic, even on invalid TOML
		checkLocatorCoverage(t, data)
	})
}

// TestKeyPathRendering covers quoting and indices.
func TestKeyPathRendering(t *testing.T) {
	tests := []struct {
		name string
		path keyPath
		want string
	}{
		{"bare", keyPath{}.key("env").key("API_KEY").key("type"), "env.API_KEY.type"},
		{"dotted key quoted", keyPath{}.key("subscribe").key("tool.v1.execute").key("priority"), `subscribe."tool.v1.execute".priority`},
		{"index", keyPath{}.key("component").index(0).key("file"), "component[0].file"},
		{"nested index", keyPath{}.key("a").index(1).index(2), "a[1][2]"},
		{"colon", keyPath{}.key("imports").key("astrid:session"), `imports."astrid:session"`},
		{"empty key", keyPath{}.key("publish").key(""), `publish.""`},
		{"escapes", keyPath{}.key("k").key("a\"b\\c\td\x01"), `k."a\"b\\c\td\u0001"`},
		{"hyphen", keyPath{}.key("package").key("astrid-version"), "package.astrid-version"},
		{"unicode", keyPath{}.key("é"), `"é"`},
		{"root", keyPath{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.path.String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	// key/index never alias: extending a shared prefix twice keeps both.
	base := make(keyPath, 0, 8).key("a")
	x, y := base.key("x"), base.key("y")
	if x.String() != "a.x" || y.String() != "a.y" {
		t.Errorf("aliasing: %s %s", x, y)
	}
}

// TestLocateCRLF: Windows line endings give the same positions.
func TestLocateCRLF(t *testing.T) {
	lf := locate([]byte(locateDoc))
	crlfDoc := strings.ReplaceAll(locateDoc, "\n", "\r\n")
	if _, err := toml.Decode(crlfDoc, new(map[string]any)); err != nil {
		t.Fatalf("CRLF document is not valid TOML: %v", err)
	}
	crlf := locate([]byte(crlfDoc))
	for k, want := range lf.pos {
		if got, ok := crlf.pos[k]; !ok || got != want {
			t.Errorf("%s: CRLF at %+v (found %v), LF at %+v", k, got, ok, want)
		}
	}
}
