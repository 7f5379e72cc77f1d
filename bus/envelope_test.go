package bus_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/nats-io/nats.go"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newStamper(t testing.TB) *bus.Stamper {
	t.Helper()
	st, err := bus.NewStamper(testKey, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAttribution(t *testing.T) {
	for _, a := range []bus.Attribution{bus.Claimed, bus.Verified, bus.System} {
		got, err := bus.ParseAttribution(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAttribution(%q) = %v, %v", a.String(), got, err)
		}
	}
	if want := []string{"claimed", "verified", "system"}; bus.Claimed.String() != want[0] ||
		bus.Verified.String() != want[1] || bus.System.String() != want[2] {
		t.Errorf("names: %v %v %v", bus.Claimed, bus.Verified, bus.System)
	}
	var zero bus.Attribution
	if zero != bus.Claimed {
		t.Errorf("zero Attribution is %v, want claimed (least trusted)", zero)
	}
	for _, bad := range []string{"", "Verified", "root", "verified "} {
		if _, err := bus.ParseAttribution(bad); !errors.Is(err, bus.ErrInvalidAttribution) {
			t.Errorf("ParseAttribution(%q) err = %v", bad, err)
		}
	}
}

func TestValidPrincipal(t *testing.T) {
	tests := []struct {
		p    string
		want bool
	}{
		{"default", true}, {"alice", true}, {"A-b_9", true}, {strings.Repeat("x", 64), true},
		{"", false}, {strings.Repeat("x", 65), false}, {"a.b", false}, {"a:b", false},
		{"a/b", false}, {"a@b", false}, {"al ice", false}, {"\u00e9", false}, {"a\x00", false},
	}
	for _, tt := range tests {
		if got := bus.ValidPrincipal(tt.p); got != tt.want {
			t.Errorf("ValidPrincipal(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestNewStamperWeakKey(t *testing.T) {
	if _, err := bus.NewStamper(make([]byte, bus.MinKeyBytes-1), "n"); !errors.Is(err, bus.ErrWeakKey) {
		t.Fatalf("short key: err = %v", err)
	}
	k, err := bus.GenerateKey()
	if err != nil || len(k) != 32 {
		t.Fatalf("GenerateKey = %d bytes, %v", len(k), err)
	}
}

func TestStampDecodeRoundTrip(t *testing.T) {
	st := newStamper(t)
	subjects := bus.Subjects{Prefix: "astrid.n1"}
	tests := []struct {
		name string
		in   bus.Message
	}{
		{name: "verified capsule publish", in: bus.Message{
			Topic: "counter.v1.increment", Payload: []byte(`{"n":1}`), Principal: "alice",
			Attribution: bus.Verified, Source: "550e8400-e29b-41d4-a716-446655440000", Origin: bus.OriginLocal,
		}},
		{name: "claimed principal carried on", in: bus.Message{
			Topic: "echo.v1.request", Payload: []byte(`{}`), Principal: "bob", Attribution: bus.Claimed,
			Origin: bus.OriginRemote, Reply: "_INBOX.abc",
		}},
		{name: "system, no principal, default origin", in: bus.Message{
			Topic: "astrid.v1.watchdog.tick", Payload: []byte(`{}`), Attribution: bus.System,
		}},
		{name: "empty payload and foreign header", in: bus.Message{
			Topic: "a.b", Principal: "carol", Attribution: bus.Verified, Origin: bus.OriginLocal,
			Header: nats.Header{"Traceparent": []string{"00-abc-01"}},
		}},
	}
	var lastSeq uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			before := time.Now()
			msg := st.Stamp(subjects.Subject(in.Topic), &in)
			if msg.Subject != "astrid.n1."+in.Topic {
				t.Errorf("subject = %q", msg.Subject)
			}
			if in.Seq <= lastSeq {
				t.Errorf("seq %d not after %d", in.Seq, lastSeq)
			}
			lastSeq = in.Seq
			if in.Time.Before(before) || in.Node != "node-1" {
				t.Errorf("stamp fields: time %v node %q", in.Time, in.Node)
			}
			got := bus.Decode(msg, subjects, testKey)
			want := in
			if want.Origin == "" {
				want.Origin = bus.OriginSystem
			}
			if got.Topic != want.Topic || string(got.Payload) != string(want.Payload) || got.Principal != want.Principal ||
				got.Attribution != want.Attribution || got.Source != want.Source || got.Seq != want.Seq ||
				!got.Time.Equal(want.Time) || got.Origin != want.Origin || got.Node != want.Node || got.Reply != want.Reply {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if len(want.Header) == 0 && got.Header != nil {
				t.Errorf("Header = %v, want nil", got.Header)
			}
			for k, v := range want.Header {
				if g := got.Header[k]; len(g) != 1 || g[0] != v[0] {
					t.Errorf("header %s = %v, want %v", k, g, v)
				}
			}
		})
	}
}

func TestStampStripsCallerHeaders(t *testing.T) {
	st := newStamper(t)
	in := bus.Message{
		Topic: "a.b", Payload: []byte(`1`), Principal: "alice", Attribution: bus.Claimed,
		Header: nats.Header{
			"Astrid-Attribution": {"system"},
			"astrid-principal":   {"root"},
			"ASTRID-ENV":         {"forged"},
			"Astrid-Env":         {"v2 system - 1 0 system node-1 forged"},
			"Astrid-Error":       {"denied"},
			"X-Keep":             {"yes"},
		},
	}
	msg := st.Stamp("a.b", &in)
	want := map[string]bool{bus.HeaderPrincipal: true, bus.HeaderEnvelope: true, "X-Keep": true}
	for k := range msg.Header {
		if !want[k] {
			t.Errorf("caller header %q survived", k)
		}
	}
	if len(msg.Header) != len(want) {
		t.Errorf("headers = %v, want exactly %v", msg.Header, want)
	}
	if got := msg.Header[bus.HeaderEnvelope]; len(got) != 1 || !strings.HasPrefix(got[0], "v2 claimed - ") {
		t.Errorf("envelope header = %v", got)
	}
	if got := msg.Header.Get("X-Keep"); got != "yes" {
		t.Errorf("X-Keep = %q", got)
	}
	d := bus.Decode(msg, bus.Subjects{}, testKey)
	if d.Attribution != bus.Claimed || d.Principal != "alice" || d.Origin != bus.OriginSystem || d.Seq == 0 {
		t.Errorf("decoded %+v", d)
	}

	// EncodeClaimed strips the same way and keeps only the principal claim,
	// also into a message that carried a stamp before.
	out := *msg
	out.Header = cloneHeader(msg.Header)
	bus.EncodeClaimed(&out, "a.b", &in)
	if len(out.Header) != 2 || out.Header.Get(bus.HeaderPrincipal) != "alice" || out.Header.Get("X-Keep") != "yes" {
		t.Errorf("EncodeClaimed headers = %v", out.Header)
	}
}

func TestStampToReuse(t *testing.T) {
	st := newStamper(t)
	var msg nats.Msg
	first := bus.Message{Topic: "a.b", Principal: "alice", Source: "s1", Header: nats.Header{"X-One": {"1"}}}
	st.StampTo(&msg, "a.b", &first)
	second := bus.Message{Topic: "c.d", Attribution: bus.System}
	st.StampTo(&msg, "c.d", &second)
	if _, ok := msg.Header["X-One"]; ok {
		t.Error("foreign header of the previous message survived reuse")
	}
	if _, ok := msg.Header[bus.HeaderPrincipal]; ok {
		t.Error("principal of the previous message survived reuse")
	}
	d := bus.Decode(&msg, bus.Subjects{}, testKey)
	if d.Attribution != bus.System || d.Topic != "c.d" || d.Seq != second.Seq || d.Source != "" || d.Principal != "" {
		t.Errorf("decoded %+v", d)
	}
}

// TestEnvelopeWireFormat pins the exact header layout: Astrid-Principal,
// and Astrid-Env = "v2 <attribution> <source|-> <seq> <unixnano> <origin>
// <node> <sig>".
func TestEnvelopeWireFormat(t *testing.T) {
	st := newStamper(t)
	m := bus.Message{Topic: "a.b", Payload: []byte(`{}`), Principal: "alice", Attribution: bus.Verified,
		Source: "550e8400-e29b-41d4-a716-446655440000", Origin: bus.OriginLocal}
	msg := st.Stamp("astrid.a.b", &m)
	if len(msg.Header) != 2 || msg.Header.Get(bus.HeaderPrincipal) != "alice" {
		t.Fatalf("headers = %v", msg.Header)
	}
	env := msg.Header.Get(bus.HeaderEnvelope)
	f := strings.Split(env, " ")
	if len(f) != 8 {
		t.Fatalf("Astrid-Env %q has %d fields, want 8", env, len(f))
	}
	want := []string{"v2", "verified", m.Source, strconv.FormatUint(m.Seq, 10),
		strconv.FormatInt(m.Time.UnixNano(), 10), "local", "node-1"}
	for i, w := range want {
		if f[i] != w {
			t.Errorf("field %d = %q, want %q (%s)", i, f[i], w, env)
		}
	}
	if len(f[7]) != 43 || strings.ContainsAny(f[7], "+/=") {
		t.Errorf("signature %q is not 43 characters of unpadded base64url", f[7])
	}

	// A system message has no principal header and "-" for no source.
	sys := bus.Message{Topic: "a.b", Attribution: bus.System}
	msg = st.Stamp("a.b", &sys)
	if _, ok := msg.Header[bus.HeaderPrincipal]; ok || len(msg.Header) != 1 {
		t.Errorf("system headers = %v", msg.Header)
	}
	if f := strings.Split(msg.Header.Get(bus.HeaderEnvelope), " "); len(f) != 8 || f[1] != "system" || f[2] != "-" || f[5] != "system" {
		t.Errorf("system envelope = %q", msg.Header.Get(bus.HeaderEnvelope))
	}
}

// TestEnvelopeTokens: field values that are not plain tokens (empty,
// spaces, '%', a lone "-", non-ASCII) round-trip, on the wire format's
// escaping, through Stamp and Decode.
func TestEnvelopeTokens(t *testing.T) {
	for _, tt := range []struct{ node, source, origin string }{
		{"node-1", "", "local"},
		{"n 1", "sess 1", "re mote"},
		{"-", "-", "%"},
		{"n%2D", "%41", "\u00e9\t\r\n"},
		{"", "\x00\xff", " x "},
	} {
		st, err := bus.NewStamper(testKey, tt.node)
		if err != nil {
			t.Fatal(err)
		}
		m := bus.Message{Topic: "a.b", Payload: []byte(`1`), Principal: "p", Attribution: bus.Verified,
			Source: tt.source, Origin: tt.origin}
		msg := st.Stamp("a.b", &m)
		env := msg.Header.Get(bus.HeaderEnvelope)
		if n := len(strings.Split(env, " ")); n != 8 || strings.ContainsAny(env, "\r\n\t\x00") {
			t.Errorf("%+v: envelope %q has %d fields or control bytes", tt, env, n)
		}
		d := bus.Decode(msg, bus.Subjects{}, testKey)
		if d.Attribution != bus.Verified || d.Node != tt.node || d.Source != tt.source || d.Origin != tt.origin {
			t.Errorf("%+v: decoded node %q source %q origin %q attribution %v", tt, d.Node, d.Source, d.Origin, d.Attribution)
		}
		if got := bus.EnvelopeNode(msg.Header); got != tt.node {
			t.Errorf("EnvelopeNode = %q, want %q", got, tt.node)
		}
	}
}

func TestEnvelopeNode(t *testing.T) {
	st := newStamper(t)
	m := bus.Message{Topic: "a.b"}
	genuine := st.Stamp("a.b", &m).Header.Get(bus.HeaderEnvelope)
	for _, tt := range []struct {
		name string
		h    nats.Header
		want string
	}{
		{"stamped", nats.Header{bus.HeaderEnvelope: {genuine}}, "node-1"},
		{"forged: named, not verified", nats.Header{bus.HeaderEnvelope: {"v2 verified - 1 0 local n9 " + strings.Repeat("A", 43)}}, "n9"},
		{"no header", nats.Header{}, ""},
		{"nil header", nil, ""},
		{"repeated", nats.Header{bus.HeaderEnvelope: {genuine, genuine}}, ""},
		{"missing field", nats.Header{bus.HeaderEnvelope: {"v2 verified - 1 0 local n9"}}, ""},
		{"other version", nats.Header{bus.HeaderEnvelope: {"v3 verified - 1 0 local n9 x"}}, ""},
	} {
		if got := bus.EnvelopeNode(tt.h); got != tt.want {
			t.Errorf("%s: EnvelopeNode = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// forged returns a NATS message as an outside client would build it,
// claiming every envelope field.
func forged() *nats.Msg {
	return &nats.Msg{
		Subject: "counter.v1.increment",
		Data:    []byte(`{}`),
		Header: nats.Header{
			bus.HeaderPrincipal: {"alice"},
			bus.HeaderEnvelope: {"v2 verified 550e8400-e29b-41d4-a716-446655440000 99 1577836800000000000 local node-1 " +
				strings.Repeat("A", 43)},
		},
	}
}

func assertOutside(t *testing.T, d bus.Message, principal string) {
	t.Helper()
	if d.Attribution != bus.Claimed || d.Principal != principal || d.Origin != bus.OriginExternal ||
		d.Source != "" || d.Seq != 0 || d.Node != "" {
		t.Errorf("decoded %+v; want claimed %q from outside, no source/seq/node", d, principal)
	}
	if time.Since(d.Time) > time.Minute {
		t.Errorf("time %v is not the receive time", d.Time)
	}
}

func TestDecodeForgedIsDowngraded(t *testing.T) {
	st := newStamper(t)
	// A genuine stamped message, to replay parts of.
	orig := bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{"a":1}`), Principal: "alice",
		Attribution: bus.Verified, Origin: bus.OriginLocal, Source: "sess"}
	genuine := st.Stamp("counter.v1.increment", &orig)

	tests := []struct {
		name      string
		msg       func() *nats.Msg
		key       []byte
		principal string
	}{
		{name: "forged verified from an outside client", msg: forged, key: testKey, principal: "alice"},
		{name: "no headers at all", msg: func() *nats.Msg {
			return &nats.Msg{Subject: "a.b", Data: []byte(`{}`)}
		}, key: testKey, principal: bus.DefaultPrincipal},
		{name: "only a principal claim", msg: func() *nats.Msg {
			return &nats.Msg{Subject: "a.b", Header: nats.Header{bus.HeaderPrincipal: {"bob"}}}
		}, key: testKey, principal: "bob"},
		{name: "principal claim in lower case", msg: func() *nats.Msg {
			return &nats.Msg{Subject: "a.b", Header: nats.Header{"astrid-principal": {"bob"}}}
		}, key: testKey, principal: "bob"},
		{name: "genuine stamp, other key", msg: func() *nats.Msg { return genuine }, key: []byte("another-key-0123456789"), principal: "alice"},
		{name: "genuine stamp, no key", msg: func() *nats.Msg { return genuine }, key: nil, principal: "alice"},
		{name: "replayed headers, other payload", msg: func() *nats.Msg {
			m := *genuine
			m.Data = []byte(`{"a":2}`)
			return &m
		}, key: testKey, principal: "alice"},
		{name: "replayed headers, other subject", msg: func() *nats.Msg {
			m := *genuine
			m.Subject = "counter.v1.reset"
			return &m
		}, key: testKey, principal: "alice"},
		{name: "replayed headers, other reply", msg: func() *nats.Msg {
			m := *genuine
			m.Reply = "_INBOX.thief"
			return &m
		}, key: testKey, principal: "alice"},
		{name: "replayed headers, principal changed", msg: func() *nats.Msg {
			m := *genuine
			m.Header = cloneHeader(genuine.Header)
			m.Header[bus.HeaderPrincipal] = []string{"mallory"}
			return &m
		}, key: testKey, principal: "mallory"},
		{name: "replayed headers, attribution raised", msg: func() *nats.Msg {
			return withEnvelope(genuine, strings.Replace(genuine.Header.Get(bus.HeaderEnvelope), " verified ", " system ", 1))
		}, key: testKey, principal: "alice"},
		{name: "replayed headers, principal removed", msg: func() *nats.Msg {
			m := *genuine
			m.Header = cloneHeader(genuine.Header)
			delete(m.Header, bus.HeaderPrincipal)
			return &m
		}, key: testKey, principal: bus.DefaultPrincipal},
		{name: "envelope header repeated", msg: func() *nats.Msg {
			m := *genuine
			m.Header = cloneHeader(genuine.Header)
			m.Header.Add(bus.HeaderEnvelope, genuine.Header.Get(bus.HeaderEnvelope))
			return &m
		}, key: testKey, principal: "alice"},
		{name: "principal header repeated", msg: func() *nats.Msg {
			m := *genuine
			m.Header = cloneHeader(genuine.Header)
			m.Header.Add(bus.HeaderPrincipal, "alice")
			return &m
		}, key: testKey, principal: "alice"},
		{name: "envelope under a lower-case name", msg: func() *nats.Msg {
			m := *genuine
			m.Header = nats.Header{bus.HeaderPrincipal: {"alice"}, "astrid-env": genuine.Header[bus.HeaderEnvelope]}
			return &m
		}, key: testKey, principal: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertOutside(t, bus.Decode(tt.msg(), bus.Subjects{}, tt.key), tt.principal)
		})
	}
	// The genuine message itself does verify: the cases above fail for the
	// reason they name.
	if d := bus.Decode(genuine, bus.Subjects{}, testKey); d.Attribution != bus.Verified || d.Origin != bus.OriginLocal || d.Source != "sess" {
		t.Fatalf("genuine message decoded as %+v", d)
	}
}

func TestDecodeInvalidPrincipalIsDefault(t *testing.T) {
	for _, p := range []string{"", "a.b", "a:capsule:x", "al ice", strings.Repeat("x", 65), "\u00e9", "*", ">"} {
		m := &nats.Msg{Subject: "a.b", Header: nats.Header{bus.HeaderPrincipal: {p}, bus.HeaderEnvelope: forged().Header[bus.HeaderEnvelope]}}
		assertOutside(t, bus.Decode(m, bus.Subjects{}, testKey), bus.DefaultPrincipal)
	}
}

// withEnvelope returns a copy of m whose Astrid-Env value is env.
func withEnvelope(m *nats.Msg, env string) *nats.Msg {
	out := *m
	out.Header = cloneHeader(m.Header)
	out.Header.Set(bus.HeaderEnvelope, env)
	return &out
}

// TestDecodeMalformedEnvelope: a stamped message whose Astrid-Env value
// has extra or missing fields, another layout or a bad signature decodes
// as an outside message, whatever the rest of it claims.
func TestDecodeMalformedEnvelope(t *testing.T) {
	st := newStamper(t)
	orig := bus.Message{Topic: "a.b", Payload: []byte(`{"a":1}`), Principal: "alice",
		Attribution: bus.Verified, Origin: bus.OriginLocal, Source: "sess"}
	genuine := st.Stamp("a.b", &orig)
	env := genuine.Header.Get(bus.HeaderEnvelope)
	f := strings.Split(env, " ")
	join := func(fields ...string) string { return strings.Join(fields, " ") }
	other := bus.Message{Topic: "a.b", Payload: []byte(`{"a":2}`), Principal: "alice", Attribution: bus.Verified}
	otherSig := strings.Split(st.Stamp("a.b", &other).Header.Get(bus.HeaderEnvelope), " ")[7]
	flipped := []byte(f[7])
	flipped[10] ^= 1
	for _, tt := range []struct{ name, env string }{
		{"extra field at the end", env + " x"},
		{"extra field in the middle", join(append(f[:3:3], append([]string{"x"}, f[3:]...)...)...)},
		{"missing source", join(append(f[:2:2], f[3:]...)...)},
		{"missing signature", join(f[:7]...)},
		{"empty", ""},
		{"only the version", "v2"},
		{"double space", strings.Replace(env, " ", "  ", 1)},
		{"trailing space", env + " "},
		{"leading space", " " + env},
		{"tab separated", strings.ReplaceAll(env, " ", "\t")},
		{"version v1", join(append([]string{"v1"}, f[1:]...)...)},
		{"version v3", join(append([]string{"v3"}, f[1:]...)...)},
		{"signature truncated", env[:len(env)-1]},
		{"signature one bit off", join(append(f[:7:7], string(flipped))...)},
		{"signature of another message", join(append(f[:7:7], otherSig)...)},
		{"signature with padding", env + "="},
		{"seq changed", join(append(append(f[:3:3], "12345"), f[4:]...)...)},
		{"time changed", join(append(append(f[:4:4], "0"), f[5:]...)...)},
		{"source escaped differently", join(append(append(f[:2:2], "%73ess"), f[3:]...)...)},
		{"node changed", join(append(append(f[:6:6], "node-2"), f[7:]...)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env == env {
				t.Fatal("test case does not change the envelope")
			}
			assertOutside(t, bus.Decode(withEnvelope(genuine, tt.env), bus.Subjects{}, testKey), "alice")
		})
	}
	if d := bus.Decode(genuine, bus.Subjects{}, testKey); d.Attribution != bus.Verified || d.Source != "sess" {
		t.Fatalf("genuine message decoded as %+v", d)
	}
}

func cloneHeader(h nats.Header) nats.Header {
	out := nats.Header{}
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func TestEnvelopeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race; run without -race to count allocations")
	}
	st := newStamper(t)
	payload := []byte(`{"n":1}`)
	var msg nats.Msg
	m := bus.Message{Topic: "counter.v1.increment", Payload: payload, Principal: "alice",
		Attribution: bus.Verified, Source: "550e8400-e29b-41d4-a716-446655440000", Origin: bus.OriginLocal}
	st.StampTo(&msg, m.Topic, &m) // warm the header map
	if n := testing.AllocsPerRun(200, func() { st.StampTo(&msg, m.Topic, &m) }); n > 1 {
		t.Errorf("StampTo into a reused message allocates %v times, want <= 1", n)
	}
	if n := testing.AllocsPerRun(200, func() { _ = bus.Decode(&msg, bus.Subjects{}, testKey) }); n != 0 {
		t.Errorf("Decode of a stamped message allocates %v times, want 0", n)
	}
	if d := bus.Decode(&msg, bus.Subjects{}, testKey); d.Attribution != bus.Verified {
		t.Fatalf("not verified: %+v", d)
	}
}
