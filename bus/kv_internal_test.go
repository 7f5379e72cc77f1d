package bus

import (
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain_KEY-09", "plain_KEY-09"},
		{"a.b", "a=2Eb"},
		{"a b", "a=20b"},
		{"=", "=3D"},
		{"=2E", "=3D2E"},
		{"\u00e9", "=C3=A9"},
		{"*>/:", "=2A=3E=2F=3A"},
	}
	for _, tt := range tests {
		if got := string(escapeAppend(nil, tt.in)); got != tt.want {
			t.Errorf("escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := unescape(tt.want); err != nil || back != tt.in {
			t.Errorf("unescape(%q) = %q, %v", tt.want, back, err)
		}
	}
	for _, bad := range []string{"=", "=2", "=G0", "=2e", "a=Z9"} {
		if _, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

func TestKVKeyLayout(t *testing.T) {
	got, err := kvKey("alice:capsule:notes", "a.b c")
	if err != nil || got != "alice.capsule.notes.a=2Eb=20c" {
		t.Fatalf("kvKey = %q, %v", got, err)
	}
	if got, err := kvKey("p:capsule:my.capsule", "k"); err != nil || got != "p.capsule.my=2Ecapsule.k" {
		t.Fatalf("kvKey = %q, %v", got, err)
	}
}

// FuzzEscape checks the properties the KV layout relies on: the escaped
// form uses only NATS key bytes and no dot, it round-trips, and it
// preserves prefixes in both directions.
func FuzzEscape(f *testing.F) {
	f.Add("with.dots", "with")
	f.Add("=2E", "=")
	f.Add("\u00e9t\u00e9", "\u00e9")
	f.Fuzz(func(t *testing.T, key, prefix string) {
		ek := string(escapeAppend(nil, key))
		ep := string(escapeAppend(nil, prefix))
		for i := 0; i < len(ek); i++ {
			if c := ek[i]; !safeByte(c) && c != '=' {
				t.Fatalf("escape(%q) = %q has byte %q", key, ek, c)
			}
		}
		back, err := unescape(ek)
		if err != nil || back != key {
			t.Fatalf("round trip of %q: %q, %v", key, back, err)
		}
		if strings.HasPrefix(ek, ep) != strings.HasPrefix(key, prefix) {
			t.Fatalf("prefix relation differs: key %q prefix %q escaped %q %q", key, prefix, ek, ep)
		}
	})
}
