package manifests

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Parse decodes and validates a Capsule.toml. file names the source in
// diagnostics (it is not opened). Parse never panics.
//
// It returns the manifest (best effort, also when there are errors), every
// diagnostic (errors and warnings) sorted by position, and a
// *ValidationError, which matches ErrInvalid, when at least one diagnostic
// is an error. Warnings alone do not make err non-nil.
func Parse(file string, data []byte) (m *Manifest, diags []Diagnostic, err error) {
	p := &parser{
		file: file,
		m:    &Manifest{File: file, Limits: DefaultLimits(), Supervision: DefaultSupervision()},
		once: make(map[string]bool),
	}
	defer func() {
		if r := recover(); r != nil {
			// A bug, not a user mistake; FuzzParse looks for this text.
			p.diags = append(p.diags, Diagnostic{File: file, Line: 1, Col: 1, Severity: SeverityError,
				Msg: fmt.Sprintf("internal error: %v (please report this manifest)", r)})
			m = p.m
			diags, err = p.finish()
		}
	}()
	p.run(data)
	diags, err = p.finish()
	return p.m, diags, err
}

// finish sorts the diagnostics and builds the error.
func (p *parser) finish() ([]Diagnostic, error) {
	sortDiagnostics(p.diags)
	var errs []Diagnostic
	for _, d := range p.diags {
		if d.IsError() {
			errs = append(errs, d)
		}
	}
	if len(errs) > 0 {
		return p.diags, &ValidationError{File: p.file, Diagnostics: errs}
	}
	return p.diags, nil
}

// parser holds one Parse call's state.
type parser struct {
	file  string
	loc   *locator
	diags []Diagnostic
	m     *Manifest
	org   origins
	leg   legacyInput
	once  map[string]bool
	// pubIdx and subIdx index Publish/Subscribe by topic once legacy
	// translation starts appending (see findPublish).
	pubIdx map[string]int
	subIdx map[string]int
}

// origins records where each list element of the Manifest was declared, so
// validation can point at it. Slices run parallel to the Manifest's.
type origins struct {
	components      []keyPath
	publish         []entryOrigin
	subscribe       []entryOrigin
	imports         []keyPath
	exports         []keyPath
	env             []keyPath
	tools           []keyPath
	commands        []keyPath
	uplinks         []keyPath
	mcp             []keyPath
	topics          []keyPath
	provides        []keyPath
	requires        []keyPath
	importsTable    keyPath
	bindWorkers     keyPath
	allowPersistent keyPath
	astridVersion   keyPath
}

// entryOrigin says where a publish/subscribe entry came from.
type entryOrigin struct {
	// topic is where the topic string was written.
	topic keyPath
	// entry is the [publish]/[subscribe] entry; nil for legacy entries.
	entry keyPath
}

func (p *parser) run(data []byte) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		p.syntaxError(err)
		return
	}
	p.loc = locate(data)
	root := p.newTbl(nil, raw)
	root.top = true
	p.decode(root)
	p.translateLegacy()
	p.validate()
}

func (p *parser) syntaxError(err error) {
	var pe toml.ParseError
	d := Diagnostic{File: p.file, Line: 1, Col: 1, Severity: SeverityError}
	if errors.As(err, &pe) {
		d.Line, d.Col = max(pe.Position.Line, 1), max(pe.Position.Col, 1)
		d.Msg = "TOML syntax error: " + lowerFirst(pe.Message)
	} else {
		d.Msg = "TOML syntax error: " + strings.TrimPrefix(err.Error(), "toml: ")
	}
	p.diags = append(p.diags, d)
}

// lowerFirst lower-cases a leading capital of a sentence ("Key 'a' has
// already been defined." -> "key 'a' has already been defined").
func lowerFirst(s string) string {
	s = strings.TrimSuffix(s, ".")
	if len(s) > 1 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z' {
		return string(s[0]+'a'-'A') + s[1:]
	}
	return s
}

func (p *parser) add(sev Severity, path keyPath, msg string) {
	ps := position{Line: 1, Col: 1}
	if p.loc != nil {
		ps = p.loc.at(path)
	}
	p.diags = append(p.diags, Diagnostic{File: p.file, Line: ps.Line, Col: ps.Col, Path: path.String(), Severity: sev, Msg: msg})
}

func (p *parser) errorf(path keyPath, format string, args ...any) {
	p.add(SeverityError, path, fmt.Sprintf(format, args...))
}

func (p *parser) warnf(path keyPath, format string, args ...any) {
	p.add(SeverityWarning, path, fmt.Sprintf(format, args...))
}

// warnOnce emits a warning only for the first occurrence of kind.
func (p *parser) warnOnce(kind string, path keyPath, format string, args ...any) {
	if p.once[kind] {
		return
	}
	p.once[kind] = true
	p.warnf(path, format, args...)
}

func (p *parser) typeErr(path keyPath, want string, v any) {
	p.errorf(path, "expected %s, found %s", want, typeName(v))
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch x := v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		switch x.Location().String() {
		case "date-local":
			return "date"
		case "time-local":
			return "time"
		}
		return "datetime"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// tbl reads one TOML table, recording which keys were read so the rest can
// be reported as unknown.
type tbl struct {
	p     *parser
	path  keyPath
	m     map[string]any
	used  map[string]bool
	known []string
	top   bool
}

func (p *parser) newTbl(path keyPath, m map[string]any) *tbl {
	return &tbl{p: p, path: path, m: m, used: make(map[string]bool)}
}

func (t *tbl) at(k string) keyPath { return t.path.key(k) }

// keys returns the table's keys in source order.
func (t *tbl) keys() []string {
	ks := make([]string, 0, len(t.m))
	for k := range t.m {
		ks = append(ks, k)
	}
	return t.p.loc.order(t.path, ks)
}

// take returns the raw value of key k and marks it read.
func (t *tbl) take(k string) (any, bool) {
	t.known = append(t.known, k)
	v, ok := t.m[k]
	if ok {
		t.used[k] = true
	}
	return v, ok
}

func (t *tbl) str(k string) (string, bool) {
	v, ok := t.take(k)
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		t.p.typeErr(t.at(k), "string", v)
		return "", false
	}
	return s, true
}

// reqStr reads a required string key; a missing key is an error.
func (t *tbl) reqStr(k string) string {
	if _, ok := t.m[k]; !ok {
		t.known = append(t.known, k)
		t.p.errorf(t.at(k), "missing required key")
		return ""
	}
	s, _ := t.str(k)
	return s
}

func (t *tbl) boolean(k string) (bool, bool) {
	v, ok := t.take(k)
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		t.p.typeErr(t.at(k), "boolean", v)
		return false, false
	}
	return b, true
}

func (t *tbl) integer(k string) (int64, bool) {
	v, ok := t.take(k)
	if !ok {
		return 0, false
	}
	n, isInt := v.(int64)
	if !isInt {
		t.p.typeErr(t.at(k), "integer", v)
		return 0, false
	}
	return n, true
}

// intRange reads an integer that must lie in [lo, hi].
func (t *tbl) intRange(k string, lo, hi int64) (int64, bool) {
	n, ok := t.integer(k)
	if !ok {
		return 0, false
	}
	if n < lo || n > hi {
		t.p.errorf(t.at(k), "must be between %d and %d, found %d", lo, hi, n)
		return 0, false
	}
	return n, true
}

// number reads a float; an integer is accepted.
func (t *tbl) number(k string) (float64, bool) {
	v, ok := t.take(k)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	t.p.typeErr(t.at(k), "float", v)
	return 0, false
}

// duration reads a Go duration string such as "30s" that must be positive.
func (t *tbl) duration(k string) (time.Duration, bool) {
	v, ok := t.take(k)
	if !ok {
		return 0, false
	}
	s, isStr := v.(string)
	if !isStr {
		t.p.errorf(t.at(k), `expected duration string such as "30s", found %s`, typeName(v))
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.p.errorf(t.at(k), `invalid duration %s: expected a duration such as "500ms", "30s" or "1m30s"`, quoteString(s))
		return 0, false
	}
	if d <= 0 {
		t.p.errorf(t.at(k), "duration must be positive, found %s", quoteString(s))
		return 0, false
	}
	return d, true
}

// array returns the elements of an array value.
func asArray(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out, true
	}
	return nil, false
}

// strs reads an array of strings; empty arrays come back as nil. Each
// wrong element is reported and skipped.
func (t *tbl) strs(k string) ([]string, bool) {
	v, ok := t.take(k)
	if !ok {
		return nil, false
	}
	arr, isArr := asArray(v)
	if !isArr {
		t.p.typeErr(t.at(k), "array", v)
		return nil, false
	}
	var out []string
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			t.p.typeErr(t.at(k).index(i), "string", e)
			continue
		}
		out = append(out, s)
	}
	return out, true
}

// strsPaths is strs that also returns the path of each kept element.
func (t *tbl) strsPaths(k string) ([]string, []keyPath) {
	v, ok := t.take(k)
	if !ok {
		return nil, nil
	}
	arr, isArr := asArray(v)
	if !isArr {
		t.p.typeErr(t.at(k), "array", v)
		return nil, nil
	}
	var out []string
	var paths []keyPath
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			t.p.typeErr(t.at(k).index(i), "string", e)
			continue
		}
		out = append(out, s)
		paths = append(paths, t.at(k).index(i))
	}
	return out, paths
}

// sub reads a table-valued key.
func (t *tbl) sub(k string) (*tbl, bool) {
	v, ok := t.take(k)
	if !ok {
		return nil, false
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		t.p.typeErr(t.at(k), "table", v)
		return nil, false
	}
	return t.p.newTbl(t.at(k), m), true
}

// tables reads an array of tables ([[k]] or k = [{...}]).
func (t *tbl) tables(k string) []*tbl {
	v, ok := t.take(k)
	if !ok {
		return nil
	}
	arr, isArr := asArray(v)
	if !isArr {
		t.p.typeErr(t.at(k), "array of tables", v)
		return nil
	}
	var out []*tbl
	for i, e := range arr {
		m, isMap := e.(map[string]any)
		if !isMap {
			t.p.typeErr(t.at(k).index(i), "table", e)
			continue
		}
		out = append(out, t.p.newTbl(t.at(k).index(i), m))
	}
	return out
}

// data reads a free-form value (metadata, schemas, env defaults).
func (t *tbl) data(k string) (any, bool) {
	v, ok := t.take(k)
	if !ok {
		return nil, false
	}
	return normalizeValue(v), true
}

// normalizeValue makes decoded free-form data canonical: arrays are []any
// whatever their element type.
func normalizeValue(v any) any {
	switch x := v.(type) {
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalizeValue(x[i])
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalizeValue(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeValue(e)
		}
		return out
	}
	return v
}

// finish reports every key that was not read as an unknown key (a warning).
func (t *tbl) finish() {
	for _, k := range t.keys() {
		if t.used[k] {
			continue
		}
		what := "unknown key"
		if t.top {
			if _, isArr := asArray(t.m[k]); isArr {
				what = "unknown section"
			} else if _, isMap := t.m[k].(map[string]any); isMap {
				what = "unknown section"
			}
		}
		if s := suggest(k, t.known); s != "" {
			t.p.warnf(t.at(k), "%s (did you mean %s?); ignored", what, RenderKey(s))
		} else {
			t.p.warnf(t.at(k), "%s; ignored", what)
		}
	}
}

// markAllUsed suppresses unknown-key warnings for the table.
func (t *tbl) markAllUsed() {
	for k := range t.m {
		t.used[k] = true
	}
}

// suggest returns the known key closest to k (case and '-'/'_' differences,
// or an edit distance of at most 2), or "".
func suggest(k string, known []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestD := "", 3
	for _, c := range known {
		if c == k {
			continue
		}
		if norm(c) == norm(k) {
			return c
		}
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, bounded for long inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt32
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortedKeys returns the keys of a map in lexical order.
func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
