package manifests

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BurntSushi/toml keeps key positions private, so the locator re-scans the
// source text and records where every key path is first mentioned. It runs
// only on input the TOML parser has accepted, so it does not report syntax
// errors; on anything unexpected it skips a byte and carries on, so it always
// terminates and never panics.
//
// Recorded paths (rendered with keyPath.String):
//   - every key of a key/value pair, and every prefix of a dotted key;
//   - every key of a [table] or [[array]] header, and every prefix;
//   - every element of an array of tables (component[0]) at its header;
//   - every element of an inline array (net[1]) at the element's value;
//   - keys inside inline tables, relative to their parent.
//
// The position of a path is its first mention.

// position is a 1-based line and byte column.
type position struct {
	Line, Col int
}

type locator struct {
	src        []byte
	i          int
	lineStarts []int
	pos        map[string]position
	aot        map[string]int     // array-of-tables path -> element count so far
	seq        map[string]int     // path -> order of first mention
	paths      map[string]keyPath // rendered path -> path
}

// locate scans src and returns the first-mention position of every key path.
func locate(src []byte) *locator {
	l := &locator{
		src:        src,
		lineStarts: []int{0},
		pos:        make(map[string]position),
		aot:        make(map[string]int),
		seq:        make(map[string]int),
		paths:      make(map[string]keyPath),
	}
	for i, c := range src {
		if c == '\n' {
			l.lineStarts = append(l.lineStarts, i+1)
		}
	}
	l.run()
	return l
}

// at returns the position of path p, falling back to the nearest ancestor
// that has one, and to 1:1 for the document root.
func (l *locator) at(p keyPath) position {
	for q := p; ; q = q.parent() {
		if ps, ok := l.pos[q.String()]; ok {
			return ps
		}
		if len(q) == 0 {
			return position{Line: 1, Col: 1}
		}
	}
}

// has reports whether path p was mentioned in the source.
func (l *locator) has(p keyPath) bool {
	_, ok := l.pos[p.String()]
	return ok
}

// order returns the keys of a table at path p sorted by first mention.
// Keys the locator did not see (it should see all) sort last, by name.
func (l *locator) order(p keyPath, keys []string) []string {
	type ranked struct {
		key  string
		seq  int
		seen bool
	}
	rs := make([]ranked, len(keys))
	for i, k := range keys {
		s, ok := l.seq[p.key(k).String()]
		rs[i] = ranked{k, s, ok}
	}
	sort.Slice(rs, func(i, j int) bool {
		ri, oki := rs[i].seq, rs[i].seen
		rj, okj := rs[j].seq, rs[j].seen
		switch {
		case oki && okj:
			return ri < rj
		case oki != okj:
			return oki
		}
		return rs[i].key < rs[j].key
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.key
	}
	return out
}

func (l *locator) offsetPos(off int) position {
	line := sort.Search(len(l.lineStarts), func(i int) bool { return l.lineStarts[i] > off }) - 1
	if line < 0 {
		line = 0
	}
	return position{Line: line + 1, Col: off - l.lineStarts[line] + 1}
}

func (l *locator) record(p keyPath, off int) {
	k := p.String()
	if _, ok := l.pos[k]; ok {
		return
	}
	l.pos[k] = l.offsetPos(off)
	l.seq[k] = len(l.seq)
	l.paths[k] = p
}

func (l *locator) eof() bool { return l.i >= len(l.src) }

func (l *locator) peek(n int) byte {
	if l.i+n < len(l.src) {
		return l.src[l.i+n]
	}
	return 0
}

func (l *locator) hasPrefix(s string) bool {
	return bytes.HasPrefix(l.src[min(l.i, len(l.src)):], []byte(s))
}

// skipSpace skips blanks and, if nl, newlines and comments.
func (l *locator) skipSpace(nl bool) {
	for !l.eof() {
		switch c := l.src[l.i]; {
		case c == ' ' || c == '\t':
			l.i++
		case nl && (c == '\n' || c == '\r'):
			l.i++
		case nl && c == '#':
			l.skipLine()
		default:
			return
		}
	}
}

// skipLine moves past the rest of the current line.
func (l *locator) skipLine() {
	for !l.eof() && l.src[l.i] != '\n' {
		l.i++
	}
}

func (l *locator) run() {
	var table keyPath
	skip := false // inside a table header deeper than maxLocateDepth
	for {
		l.skipSpace(true)
		if l.eof() {
			return
		}
		start := l.i
		if l.src[l.i] == '[' {
			table, skip = l.header()
		} else {
			l.keyval(table, skip)
		}
		// Anything left on the line is a comment (the input parsed).
		l.skipSpace(false)
		if !l.eof() && l.src[l.i] == '#' {
			l.skipLine()
		}
		if l.i == start {
			l.i++ // guarantee progress
		}
	}
}

type keyPart struct {
	name string
	off  int
}

// header parses a [table] or [[array]] header and returns the table path;
// skip is true when the header is too deep to record.
func (l *locator) header() (table keyPath, skip bool) {
	isArray := l.peek(1) == '['
	if isArray {
		l.i += 2
	} else {
		l.i++
	}
	l.skipSpace(false)
	parts := l.dottedKey()
	l.skipSpace(false)
	if isArray && l.hasPrefix("]]") {
		l.i += 2
	} else if !l.eof() && l.src[l.i] == ']' {
		l.i++
	}
	if len(parts) > maxLocateDepth {
		return nil, true
	}
	var p keyPath
	for j, part := range parts {
		p = p.key(part.name)
		l.record(p, part.off)
		rp := p.String()
		if isArray && j == len(parts)-1 {
			n := l.aot[rp]
			l.aot[rp] = n + 1
			p = p.index(n)
			l.record(p, part.off)
			continue
		}
		if n, ok := l.aot[rp]; ok && n > 0 {
			p = p.index(n - 1)
		}
	}
	return p, false
}

// keyval parses "key = value" relative to table (skip: record nothing).
func (l *locator) keyval(table keyPath, skip bool) {
	parts := l.dottedKey()
	if len(parts) == 0 {
		return
	}
	var p keyPath
	if !skip && len(table)+len(parts) <= maxLocateDepth {
		p = table
		for _, part := range parts {
			p = p.key(part.name)
			l.record(p, part.off)
		}
	}
	l.skipSpace(false)
	if !l.eof() && l.src[l.i] == '=' {
		l.i++
	}
	l.skipSpace(false)
	l.value(p)
}

// dottedKey parses a (possibly dotted, possibly quoted) key.
func (l *locator) dottedKey() []keyPart {
	var parts []keyPart
	for {
		l.skipSpace(false)
		if l.eof() {
			return parts
		}
		off := l.i
		name, ok := l.simpleKey()
		if !ok {
			return parts
		}
		parts = append(parts, keyPart{name: name, off: off})
		l.skipSpace(false)
		if l.eof() || l.src[l.i] != '.' {
			return parts
		}
		l.i++
	}
}

func (l *locator) simpleKey() (string, bool) {
	switch c := l.src[l.i]; {
	case c == '"':
		return l.basicString(), true
	case c == '\'':
		return l.literalString(), true
	case isBareKeyByte(c):
		start := l.i
		for !l.eof() && isBareKeyByte(l.src[l.i]) {
			l.i++
		}
		return string(l.src[start:l.i]), true
	}
	return "", false
}

// maxLocateDepth bounds the key paths the locator records: values nested
// deeper are skipped without recording, keeping the scan linear on
// pathological input (a = [[[[...]]]]). Diagnostics never point that deep.
const maxLocateDepth = 32

// value scans one value at path p, recording array elements and inline
// table keys (p == nil: skip without recording).
func (l *locator) value(p keyPath) {
	if len(p) > maxLocateDepth {
		p = nil
	}
	if l.eof() {
		return
	}
	switch c := l.src[l.i]; c {
	case '"':
		if l.hasPrefix(`"""`) {
			l.multiline('"')
		} else {
			l.basicString()
		}
	case '\'':
		if l.hasPrefix(`'''`) {
			l.multiline('\'')
		} else {
			l.literalString()
		}
	case '[':
		l.i++
		for n := 0; ; n++ {
			l.skipSpace(true)
			if l.eof() {
				return
			}
			if l.src[l.i] == ']' {
				l.i++
				return
			}
			start := l.i
			var ep keyPath
			if p != nil {
				ep = p.index(n)
				l.record(ep, l.i)
			}
			l.value(ep)
			l.skipSpace(true)
			if !l.eof() && l.src[l.i] == ',' {
				l.i++
			}
			if l.i == start {
				l.i++
			}
		}
	case '{':
		l.i++
		for {
			l.skipSpace(true)
			if l.eof() {
				return
			}
			if l.src[l.i] == '}' {
				l.i++
				return
			}
			start := l.i
			parts := l.dottedKey()
			var kp keyPath
			if p != nil && len(p)+len(parts) <= maxLocateDepth {
				kp = p
				for _, part := range parts {
					kp = kp.key(part.name)
					l.record(kp, part.off)
				}
			}
			l.skipSpace(false)
			if !l.eof() && l.src[l.i] == '=' {
				l.i++
				l.skipSpace(false)
				l.value(kp)
			}
			l.skipSpace(true)
			if !l.eof() && l.src[l.i] == ',' {
				l.i++
			}
			if l.i == start {
				l.i++
			}
		}
	default:
		l.scalar()
	}
}

// scalar skips a number, boolean or date/time. A date and a time may be
// separated by one space ("1979-05-27 07:32:00").
func (l *locator) scalar() {
	start := l.i
	for !l.eof() {
		c := l.src[l.i]
		if c == ',' || c == ']' || c == '}' || c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			if c == ' ' && l.i-start == 10 && l.src[start+4] == '-' && l.src[start+7] == '-' &&
				l.peek(1) >= '0' && l.peek(1) <= '9' {
				l.i++
				continue
			}
			return
		}
		l.i++
	}
}

// basicString parses a single-line "basic string" and returns its value.
func (l *locator) basicString() string {
	l.i++ // opening quote
	var b strings.Builder
	for !l.eof() {
		c := l.src[l.i]
		switch {
		case c == '"':
			l.i++
			return b.String()
		case c == '\n':
			return b.String()
		case c == '\\':
			l.escape(&b)
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return b.String()
}

// escape decodes one escape sequence at l.i (which holds the backslash).
func (l *locator) escape(b *strings.Builder) {
	l.i++
	if l.eof() {
		return
	}
	c := l.src[l.i]
	l.i++
	switch c {
	case 'b':
		b.WriteByte('\b')
	case 't':
		b.WriteByte('\t')
	case 'n':
		b.WriteByte('\n')
	case 'f':
		b.WriteByte('\f')
	case 'r':
		b.WriteByte('\r')
	case 'e':
		b.WriteByte(0x1b)
	case '"', '\\':
		b.WriteByte(c)
	case 'x':
		l.hexRune(b, 2)
	case 'u':
		l.hexRune(b, 4)
	case 'U':
		l.hexRune(b, 8)
	default:
		b.WriteByte('\\')
		b.WriteByte(c)
	}
}

func (l *locator) hexRune(b *strings.Builder, n int) {
	if l.i+n > len(l.src) {
		l.i = len(l.src)
		return
	}
	v, err := strconv.ParseUint(string(l.src[l.i:l.i+n]), 16, 32)
	l.i += n
	if err != nil || !utf8.ValidRune(rune(v)) {
		b.WriteRune(utf8.RuneError)
		return
	}
	b.WriteRune(rune(v))
}

// literalString parses a single-line 'literal string' and returns its value.
func (l *locator) literalString() string {
	l.i++
	start := l.i
	for !l.eof() && l.src[l.i] != '\'' && l.src[l.i] != '\n' {
		l.i++
	}
	s := string(l.src[start:l.i])
	if !l.eof() && l.src[l.i] == '\'' {
		l.i++
	}
	return s
}

// multiline skips a """basic""" or ”'literal”' multi-line string. Up to two
// quote characters may directly precede the closing delimiter.
func (l *locator) multiline(q byte) {
	l.i += 3
	delim := string([]byte{q, q, q})
	for !l.eof() {
		if q == '"' && l.src[l.i] == '\\' {
			l.i += 2
			continue
		}
		if l.hasPrefix(delim) {
			l.i += 3
			for k := 0; k < 2 && !l.eof() && l.src[l.i] == q; k++ {
				l.i++
			}
			return
		}
		l.i++
	}
}
