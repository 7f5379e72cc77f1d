package bus

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

var internalKey = []byte("0123456789abcdef0123456789abcdef")

// sign returns the Astrid-Env value for the pre-signature part signed,
// with a valid MAC under internalKey for the other arguments: what only a
// holder of the key can build.
func sign(subject, reply, principal, signed string, payload []byte) string {
	pool := macPoolFor(internalKey)
	st := pool.Get().(*macState)
	defer pool.Put(st)
	sum := computeMAC(st, subject, reply, principal, signed, payload)
	return signed + " " + base64.RawURLEncoding.EncodeToString(sum)
}

// TestDecodeSignedButUnparsable: even under a valid MAC, an envelope
// whose fields do not parse is not trusted.
func TestDecodeSignedButUnparsable(t *testing.T) {
	payload := []byte(`{}`)
	for _, tt := range []struct {
		name, signed string
		ok           bool
	}{
		{"control: well-formed", "v2 verified sess 1 1764892800000000000 local n1", true},
		{"control: escapes", "v2 verified s%20s 1 0 %2D n%25", true},
		{"unknown attribution", "v2 root sess 1 0 local n1", false},
		{"attribution in upper case", "v2 Verified sess 1 0 local n1", false},
		{"seq not a number", "v2 verified sess abc 0 local n1", false},
		{"seq negative", "v2 verified sess -1 0 local n1", false},
		{"seq with sign", "v2 verified sess +1 0 local n1", false},
		{"seq overflows", "v2 verified sess 18446744073709551616 0 local n1", false},
		{"time beyond int64", "v2 verified sess 1 9223372036854775808 local n1", false},
		{"time not a number", "v2 verified sess 1 2020-01-01T00:00:00Z local n1", false},
		{"bad escape", "v2 verified s%zz 1 0 local n1", false},
		{"truncated escape", "v2 verified sess 1 0 local n%2", false},
		{"lower-case escape", "v2 verified s%2d 1 0 local n1", false},
		{"control byte in a token", "v2 verified s\x01 1 0 local n1", false},
		{"non-ASCII byte in a token", "v2 verified s\xc3\xa9 1 0 local n1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &nats.Msg{Subject: "a.b", Data: payload, Header: nats.Header{
				HeaderPrincipal: {"alice"},
				HeaderEnvelope:  {sign("a.b", "", "alice", tt.signed, payload)},
			}}
			d := Decode(m, Subjects{}, internalKey)
			if got := d.Origin != OriginExternal; got != tt.ok {
				t.Errorf("%q: trusted = %v, want %v (%+v)", tt.signed, got, tt.ok, d)
			}
			if !tt.ok && (d.Attribution != Claimed || d.Seq != 0 || d.Source != "" || d.Node != "") {
				t.Errorf("%q: decoded %+v", tt.signed, d)
			}
		})
	}
}

func TestParseDecimal(t *testing.T) {
	for _, tt := range []struct {
		s  string
		n  uint64
		ok bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"", 0, false}, {"18446744073709551616", 0, false}, {"99999999999999999999", 0, false},
		{"000000000000000000001", 0, false}, {"1a", 0, false}, {"-1", 0, false}, {" 1", 0, false},
	} {
		if n, ok := parseDecimal(tt.s); n != tt.n || ok != tt.ok {
			t.Errorf("parseDecimal(%q) = %d, %v; want %d, %v", tt.s, n, ok, tt.n, tt.ok)
		}
	}
}

// FuzzToken: every string round-trips through the token encoding, which
// is never empty and holds only printable ASCII without spaces.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "-", "%", "a b", "%2D", "\u00e9", "\x00\x7f", "550e8400-e29b-41d4-a716-446655440000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := string(appendToken(nil, s))
		if tok == "" {
			t.Fatalf("token of %q is empty", s)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] > '~' {
				t.Fatalf("token %q of %q has byte %#x", tok, s, tok[i])
			}
		}
		if back, ok := parseToken(tok); !ok || back != s {
			t.Fatalf("parseToken(%q) = %q, %v; want %q", tok, back, ok, s)
		}
	})
}

// FuzzDecodeEnvelope: Decode never panics on any Astrid-Env value, and
// trusts one only in its canonical form: the value must be exactly what a
// stamper writes for the fields Decode returned. (The seeds include a
// genuine stamp, so the trusted branch is exercised.)
func FuzzDecodeEnvelope(f *testing.F) {
	st, err := NewStamper(internalKey, "node-1")
	if err != nil {
		f.Fatal(err)
	}
	payload := []byte(`{"a":1}`)
	orig := Message{Topic: "a.b", Payload: payload, Principal: "alice",
		Attribution: Verified, Origin: OriginLocal, Source: "sess"}
	env := st.Stamp("a.b", &orig).Header.Get(HeaderEnvelope)
	f.Add(env, "alice")
	f.Add(sign("a.b", "", "alice", "v2 verified s%20s 7 0 %2D n%25", payload), "alice")
	f.Add(sign("a.b", "", "", "v2 system - 1 0 system node-1", payload), "")
	f.Add("v2 verified sess 99 1577836800000000000 local node-1 "+strings.Repeat("A", 43), "alice")
	f.Add(strings.Replace(env, "sess", "%73ess", 1), "alice")
	f.Fuzz(func(t *testing.T, value, principal string) {
		m := &nats.Msg{Subject: "a.b", Data: payload, Header: nats.Header{HeaderEnvelope: {value}}}
		if principal != "" {
			m.Header[HeaderPrincipal] = []string{principal}
		}
		d := Decode(m, Subjects{}, internalKey)
		_ = EnvelopeNode(m.Header)
		if d.Origin == OriginExternal {
			if d.Attribution != Claimed || d.Seq != 0 || d.Source != "" || d.Node != "" {
				t.Fatalf("value %q decoded %+v", value, d)
			}
			return
		}
		b := append([]byte(envelopeVersion), ' ')
		b = append(b, d.Attribution.String()...)
		b = append(append(b, ' '), appendToken(nil, d.Source)...)
		b = strconv.AppendUint(append(b, ' '), d.Seq, 10)
		b = strconv.AppendInt(append(b, ' '), d.Time.UnixNano(), 10)
		b = append(append(b, ' '), appendToken(nil, d.Origin)...)
		b = append(append(b, ' '), appendToken(nil, d.Node)...)
		canonical := sign("a.b", "", d.Principal, string(b), payload)
		if value != canonical || principal != d.Principal {
			t.Fatalf("trusted non-canonical value %q (canonical %q), principal %q as %+v", value, canonical, principal, d)
		}
	})
}
