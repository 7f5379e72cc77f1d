package hoststate

import gojson "github.com/goccy/go-json"

// validJSON reports whether b is one JSON value (RFC 8259), with optional
// surrounding whitespace, exactly as encoding/json.Valid does. Every guest
// publish and reply is checked, so the check uses goccy/go-json's validator
// (about 8x faster than encoding/json.Valid on a 256-byte object; see
// RATIONALE.md). FuzzValidJSON holds it to encoding/json's answer.
func validJSON(b []byte) bool {
	return gojson.Valid(b)
}
