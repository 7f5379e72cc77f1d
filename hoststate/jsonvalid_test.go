package hoststate

import (
	"encoding/json"
	"strings"
	"testing"
)

var jsonCases = []string{
	`{}`, `[]`, `null`, `true`, `0`, `-1.5e10`, `"x"`, ` {"a":[1,2,{"b":null}]} `,
	`{"pad":"` + strings.Repeat("x", 246) + `"}`, `"\u00e9\n"`, `"é"`,
	``, ` `, `{`, `}`, `{"a":}`, `{"a" 1}`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `+1`,
	`"\x"`, "\"\x01\"", "\"\x1f\\b0000\"", "\"\t\"", `nul`, `{} {}`, `"`, `[`, `{"a":"b"`, `NaN`, `'a'`, `"\ud800"`,
}

// TestValidJSONAgreesWithEncodingJSON pins the validator to the standard
// library's notion of valid JSON on the cases that matter.
func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range jsonCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

// FuzzValidJSON: the validator gives encoding/json's answer: it never
// accepts a payload encoding/json rejects (nothing invalid reaches another
// capsule) and never refuses one it accepts.
func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}
