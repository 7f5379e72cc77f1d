package manifests

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalid is matched (via errors.Is) by every *ValidationError: the
// manifest has at least one error-level diagnostic.
var ErrInvalid = errors.New("manifests: invalid manifest")

// ErrNotFound is returned by Discover and Load when no Capsule.toml exists
// where one was asked for.
var ErrNotFound = errors.New("manifests: no Capsule.toml found")

// Severity says whether a Diagnostic makes the manifest invalid.
type Severity int

const (
	// SeverityError makes the manifest invalid; Parse returns a
	// *ValidationError when at least one is present.
	SeverityError Severity = iota
	// SeverityWarning is reported but accepted: unknown keys, deprecated
	// legacy constructs, settings the runtime ignores.
	SeverityWarning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	switch s {
	case SeverityError:
		return "error"
	case SeverityWarning:
		return "warning"
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText renders the severity as "error" or "warning" (for --json).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses "error" or "warning".
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = SeverityError
	case "warning":
		*s = SeverityWarning
	default:
		return fmt.Errorf("manifests: unknown severity %q", b)
	}
	return nil
}

// Diagnostic is one problem found in a manifest: a TOML syntax error, a type
// error, a failed validation rule, an unknown key or a deprecated construct.
//
// Line and Col are 1-based; Col counts bytes, as Go tools do. They point at
// the key the diagnostic is about (for a missing key: at its table). Path is
// the dotted TOML key path of that key, with array-of-tables indices and
// quotes around keys that are not bare TOML keys, e.g.
// subscribe."tool.v1.execute".priority or component[0].file. Path is empty
// for TOML syntax errors.
type Diagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Path     string   `json:"path,omitempty"`
	Severity Severity `json:"severity"`
	Msg      string   `json:"message"`
}

// String renders the diagnostic as a user sees it:
//
//	file:line:col: key.path: message
//	file:line:col: key.path: warning: message
//
// The "key.path: " part is left out when Path is empty.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(d.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(d.Col))
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// IsError reports whether the diagnostic has SeverityError.
func (d Diagnostic) IsError() bool { return d.Severity == SeverityError }

// sortDiagnostics orders diagnostics by position, keeping the emission order
// of diagnostics at the same position.
func sortDiagnostics(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].Line != ds[j].Line {
			return ds[i].Line < ds[j].Line
		}
		return ds[i].Col < ds[j].Col
	})
}

// ValidationError is returned by Parse and Load when a manifest has
// error-level diagnostics. It holds only those (sorted by position); the full
// list including warnings is Parse's second result.
type ValidationError struct {
	File        string
	Diagnostics []Diagnostic
}

// Error summarises the errors: the first one, and how many more there are.
func (e *ValidationError) Error() string {
	if len(e.Diagnostics) == 0 {
		return "manifests: invalid manifest " + e.File
	}
	s := "manifests: invalid manifest: " + e.Diagnostics[0].String()
	if n := len(e.Diagnostics) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more error", n)
		if n > 1 {
			s += "s"
		}
		s += ")"
	}
	return s
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// keySeg is one element of a key path: a table key or an array index.
type keySeg struct {
	key   string
	index int
	isIdx bool
}

// keyPath is a TOML key path. Paths are values: key and index return a new
// path and never alias the receiver's backing array.
type keyPath []keySeg

func (p keyPath) key(k string) keyPath {
	q := make(keyPath, len(p), len(p)+1)
	copy(q, p)
	return append(q, keySeg{key: k})
}

func (p keyPath) index(i int) keyPath {
	q := make(keyPath, len(p), len(p)+1)
	copy(q, p)
	return append(q, keySeg{index: i, isIdx: true})
}

func (p keyPath) parent() keyPath {
	if len(p) == 0 {
		return p
	}
	return p[:len(p)-1]
}

// String renders the path: keys joined by '.', indices as [i], keys that
// are not bare TOML keys quoted.
func (p keyPath) String() string {
	var b strings.Builder
	for i, s := range p {
		if s.isIdx {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(RenderKey(s.key))
	}
	return b.String()
}

// RenderKey renders one TOML key as it appears in a key path: bare when it
// consists only of ASCII letters, digits, '-' and '_', otherwise as a quoted
// TOML basic string ("tool.v1.execute", "astrid:session", "").
func RenderKey(k string) string {
	if isBareKey(k) {
		return k
	}
	return quoteString(k)
}

// RenderPath joins keys into a rendered key path; an int element renders as
// an index. It panics on any other element type (a programmer error).
func RenderPath(elems ...any) string {
	var p keyPath
	for _, e := range elems {
		switch v := e.(type) {
		case string:
			p = p.key(v)
		case int:
			p = p.index(v)
		default:
			panic(fmt.Sprintf("manifests: RenderPath: unsupported element %T", e))
		}
	}
	return p.String()
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyByte(k[i]) {
			return false
		}
	}
	return true
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// quoteString renders s as a TOML basic string. s must be valid UTF-8 (TOML
// input always is).
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
