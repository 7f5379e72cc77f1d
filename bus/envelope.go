package bus

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names of the kernel-stamped envelope. The body of a NATS message is
// the JSON payload only; the envelope rides in two headers (see the package
// documentation for the exact format).
const (
	// HeaderPrincipal carries the principal id. From an outside client it
	// is a claim; on a stamped message it is what the host decided.
	HeaderPrincipal = "Astrid-Principal"
	// HeaderEnvelope carries the rest of a stamped envelope in one value:
	// "v2 <attribution> <source> <seq> <unixnano> <origin> <node> <sig>".
	HeaderEnvelope = "Astrid-Env"
	// HeaderError marks a reply as a typed error: its value is
	// "<code>: <detail>" and the body an ErrorReply (see Conn.ReplyError).
	// It is not covered by the signature.
	HeaderError = "Astrid-Error"
)

// Origin values (Message.Origin).
const (
	// OriginLocal is a message that entered through this node's local
	// clients or capsules.
	OriginLocal = "local"
	// OriginRemote is a message that entered through a remote gateway.
	OriginRemote = "remote"
	// OriginSystem is the kernel's own traffic; the fail-closed default
	// for stamped messages.
	OriginSystem = "system"
	// OriginExternal is any message without a valid stamp: an outside NATS
	// client.
	OriginExternal = "external"
)

// DefaultPrincipal is the single-user principal, used for outside messages
// that carry no valid Astrid-Principal header.
const DefaultPrincipal = "default"

// MinKeyBytes is the shortest node key NewStamper accepts.
const MinKeyBytes = 16

// Attribution says how far the principal of a message can be trusted.
// The zero value is Claimed, the least trusted.
type Attribution uint8

const (
	// Claimed: the principal was asserted by the sender and not checked
	// (every outside client, and uplink publish-as).
	Claimed Attribution = iota
	// Verified: the host authenticated the principal.
	Verified
	// System: the kernel itself; the principal is empty.
	System
)

// String returns "claimed", "verified" or "system" ("claimed" for an
// out-of-range value, which Decode never produces).
func (a Attribution) String() string {
	switch a {
	case Verified:
		return "verified"
	case System:
		return "system"
	default:
		return "claimed"
	}
}

// ParseAttribution is the inverse of Attribution.String. The error wraps
// ErrInvalidAttribution.
func ParseAttribution(s string) (Attribution, error) {
	if a, ok := parseAttribution(s); ok {
		return a, nil
	}
	return Claimed, &attributionError{s}
}

type attributionError struct{ s string }

func (e *attributionError) Error() string {
	return "bus: invalid attribution " + strconv.Quote(e.s)
}
func (e *attributionError) Unwrap() error { return ErrInvalidAttribution }

func parseAttribution(s string) (Attribution, bool) {
	switch s {
	case "claimed":
		return Claimed, true
	case "verified":
		return Verified, true
	case "system":
		return System, true
	}
	return Claimed, false
}

// ValidPrincipal reports whether p is a principal id: 1 to 64 bytes of
// [a-zA-Z0-9_-].
func ValidPrincipal(p string) bool {
	if len(p) == 0 || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if !safeByte(p[i]) {
			return false
		}
	}
	return true
}

// safeByte reports whether c is in [A-Za-z0-9_-].
func safeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Message is one IPC message with its envelope, decoded from or about to
// be encoded into a NATS message.
//
// A Message is a plain value owned by whoever holds it; Payload and Header
// may alias the NATS message it was decoded from, so treat them as
// read-only.
type Message struct {
	// Topic is the Astrid topic (the NATS subject without the prefix).
	Topic string
	// Payload is the body: JSON for capsule traffic.
	Payload []byte
	// Principal is the principal the message acts for; empty for System.
	Principal string
	// Attribution says how Principal was established.
	Attribution Attribution
	// Source is the publishing capsule's load-session UUID; empty for the
	// kernel and for outside clients.
	Source string
	// Seq is the stamping node's sequence number; 0 for outside messages.
	Seq uint64
	// Time is the publish time (stamped), or the receive time for outside
	// messages.
	Time time.Time
	// Origin is OriginLocal, OriginRemote, OriginSystem or OriginExternal.
	Origin string
	// Node is the id of the stamping node; empty for outside messages.
	Node string
	// Reply is the NATS reply subject, if the sender expects an answer.
	Reply string
	// Header holds the non-Astrid headers, passed through untouched; nil
	// when there are none.
	Header nats.Header
}

// isAstridHeader reports whether k is in the Astrid-* namespace, in any
// letter case.
func isAstridHeader(k string) bool {
	return len(k) >= 7 && strings.EqualFold(k[:7], "astrid-")
}

// macPools caches, per node key, a pool of HMAC states, so that signing
// and verifying allocate nothing. The map is copy-on-write.
var (
	macPools   atomic.Pointer[map[string]*sync.Pool]
	macPoolsMu sync.Mutex
)

// maxCachedKeys bounds macPools; beyond it, keys get an uncached pool.
const maxCachedKeys = 64

type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newMACPool(key []byte) *sync.Pool {
	k := append([]byte(nil), key...)
	return &sync.Pool{New: func() any {
		return &macState{h: hmac.New(sha256.New, k), buf: make([]byte, 0, 256)}
	}}
}

func macPoolFor(key []byte) *sync.Pool {
	if m := macPools.Load(); m != nil {
		if p, ok := (*m)[string(key)]; ok {
			return p
		}
	}
	macPoolsMu.Lock()
	defer macPoolsMu.Unlock()
	var old map[string]*sync.Pool
	if m := macPools.Load(); m != nil {
		old = *m
		if p, ok := old[string(key)]; ok {
			return p
		}
	}
	p := newMACPool(key)
	if len(old) >= maxCachedKeys {
		return p
	}
	next := make(map[string]*sync.Pool, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[string(key)] = p
	macPools.Store(&next)
	return p
}

// envelopeVersion is the first field of the Astrid-Env header; macTag
// opens the signed string, so that a v2 MAC can never be taken for the MAC
// of another layout.
const (
	envelopeVersion = "v2"
	macTag          = "astrid-envelope-v2"
)

// envelopeFieldCount is the number of space-separated fields of an
// Astrid-Env value.
const envelopeFieldCount = 8

// appendField appends a length-prefixed string.
func appendField[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// computeMAC computes the envelope signature into st.sum. The MAC covers,
// each length-prefixed after a version tag: the NATS subject and reply
// subject, the Astrid-Principal value, the Astrid-Env value up to (not
// including) the space before the signature — every other stamped field,
// exactly as sent — and the payload.
func computeMAC[T string | []byte](st *macState, subject, reply, principal string, signed T, payload []byte) []byte {
	b := append(st.buf[:0], macTag...)
	b = appendField(b, subject)
	b = appendField(b, reply)
	b = appendField(b, principal)
	b = appendField(b, signed)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	st.buf = b
	st.h.Reset()
	st.h.Write(b)
	st.h.Write(payload)
	return st.h.Sum(st.sum[:0])
}

// sigLen is the length of a base64url (unpadded) SHA-256 MAC.
var sigLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// plainTokenByte reports whether c may stand for itself in an envelope
// token: printable ASCII other than space and '%'.
func plainTokenByte(c byte) bool { return c > ' ' && c <= '~' && c != '%' }

// appendToken appends s as one envelope token: "-" when s is empty;
// otherwise s with every byte outside printable ASCII, space and '%'
// written as %XX (upper-case hex), and a lone "-" written as "%2D". The
// encoding is injective, never empty and never contains a space.
func appendToken(b []byte, s string) []byte {
	switch s {
	case "":
		return append(b, '-')
	case "-":
		return append(b, "%2D"...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; plainTokenByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}

// parseToken is the inverse of appendToken. It allocates only for a token
// with escapes.
func parseToken(t string) (string, bool) {
	if t == "-" {
		return "", true
	}
	if t == "" {
		return "", false
	}
	esc := false
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == '%' {
			esc = true
		} else if !plainTokenByte(c) {
			return "", false
		}
	}
	if !esc {
		return t, true
	}
	out := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		if t[i] != '%' {
			out = append(out, t[i])
			continue
		}
		if i+2 >= len(t) {
			return "", false
		}
		hi, ok1 := unhex(t[i+1])
		lo, ok2 := unhex(t[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return string(out), true
}

// parseDecimal parses 1 to 20 ASCII digits without allocating.
func parseDecimal(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// envelope is an Astrid-Env value split into its fields, still encoded.
// signed is the value up to the space before the signature.
type envelope struct {
	attribution, source, seq, ts, origin, node, sig string
	signed                                          string
}

// splitEnvelope splits an Astrid-Env value into exactly
// envelopeFieldCount non-empty fields separated by single spaces, the first
// being envelopeVersion. It does not allocate.
func splitEnvelope(v string) (e envelope, ok bool) {
	var f [envelopeFieldCount]string
	rest := v
	for i := 0; i < envelopeFieldCount-1; i++ {
		j := strings.IndexByte(rest, ' ')
		if j <= 0 {
			return e, false
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if rest == "" || strings.IndexByte(rest, ' ') >= 0 || f[0] != envelopeVersion {
		return e, false
	}
	f[7] = rest
	return envelope{
		attribution: f[1], source: f[2], seq: f[3], ts: f[4], origin: f[5], node: f[6], sig: f[7],
		signed: v[:len(v)-len(rest)-1],
	}, true
}

// EnvelopeNode returns the node id named by the Astrid-Env header of h
// WITHOUT checking the signature: for display, logs and tests that ask
// which node answered, never for a trust decision (use [Decode]). It is ""
// when h has no well-formed envelope.
func EnvelopeNode(h nats.Header) string {
	v, ok := one(h, HeaderEnvelope)
	if !ok {
		return ""
	}
	e, ok := splitEnvelope(v)
	if !ok {
		return ""
	}
	node, _ := parseToken(e.node)
	return node
}

// GenerateKey returns a fresh random node key of 32 bytes.
func GenerateKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// Stamper stamps outgoing messages with the kernel envelope: it strips
// every Astrid-* header the caller supplied, assigns a sequence number and
// timestamp, and signs the envelope with the node key, so that receivers
// holding the key ([Decode]) can tell host-stamped messages from forgeries
// by outside clients.
//
// # Concurrency
//
// A Stamper is safe for concurrent use; the sequence is an atomic counter.
type Stamper struct {
	node      string
	nodeToken string // node as an envelope token
	key       []byte
	pool      *sync.Pool
	seq       atomic.Uint64
}

// NewStamper returns a Stamper for the node id node, signing with key
// (at least MinKeyBytes bytes; every node that must trust this node's
// stamps shares it). The key is copied.
func NewStamper(key []byte, node string) (*Stamper, error) {
	if len(key) < MinKeyBytes {
		return nil, ErrWeakKey
	}
	return &Stamper{
		node: node, nodeToken: string(appendToken(nil, node)),
		key: append([]byte(nil), key...), pool: macPoolFor(key),
	}, nil
}

// Node returns the node id the Stamper stamps.
func (s *Stamper) Node() string { return s.node }

// Stamp returns a new NATS message carrying m on subject, stamped and
// signed. It sets m.Seq, m.Time and m.Node (and m.Origin to OriginSystem
// when empty) to the stamped values.
func (s *Stamper) Stamp(subject string, m *Message) *nats.Msg {
	dst := &nats.Msg{}
	s.StampTo(dst, subject, m)
	return dst
}

// StampTo is Stamp into dst, reusing dst.Header's map and value slices.
// The previous content of dst is replaced. Headers in m.Header are copied
// except for the Astrid-* ones; their value slices are shared, not copied.
// Into a reused dst whose headers are only the envelope's, it allocates
// once (the Astrid-Env value).
func (s *Stamper) StampTo(dst *nats.Msg, subject string, m *Message) {
	m.Seq = s.seq.Add(1)
	m.Time = time.Now().UTC()
	m.Node = s.node
	if m.Origin == "" {
		m.Origin = OriginSystem
	}

	// The whole Astrid-Env value is built on the stack, then copied into
	// one string.
	var scratch [256]byte
	b := append(scratch[:0], envelopeVersion...)
	b = append(b, ' ')
	b = append(b, m.Attribution.String()...)
	b = append(b, ' ')
	b = appendToken(b, m.Source)
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, m.Time.UnixNano(), 10)
	b = append(b, ' ')
	b = appendToken(b, m.Origin)
	b = append(b, ' ')
	b = append(b, s.nodeToken...)

	st := s.pool.Get().(*macState)
	sum := computeMAC(st, subject, m.Reply, m.Principal, b, m.Payload)
	b = append(b, ' ')
	b = base64.RawURLEncoding.AppendEncode(b, sum)
	s.pool.Put(st)

	h := resetHeader(dst, len(m.Header))
	copyForeign(h, m.Header)
	setHeader(h, HeaderPrincipal, m.Principal)
	setHeader(h, HeaderEnvelope, string(b))
	dst.Subject = subject
	dst.Reply = m.Reply
	dst.Data = m.Payload
}

// EncodeClaimed encodes m into dst the way an outside client publishes: no
// stamp, the principal (if any) as a bare Astrid-Principal claim, and
// every other Astrid-* header stripped. Receivers decode it as Claimed.
// dst.Header's map is reused.
func EncodeClaimed(dst *nats.Msg, subject string, m *Message) {
	h := resetHeader(dst, len(m.Header))
	copyForeign(h, m.Header)
	delete(h, HeaderEnvelope)
	setHeader(h, HeaderPrincipal, m.Principal)
	dst.Subject = subject
	dst.Reply = m.Reply
	dst.Data = m.Payload
}

// copyForeign copies the non-Astrid headers of src into h.
func copyForeign(h, src nats.Header) {
	for k, vs := range src {
		if !isAstridHeader(k) {
			h[k] = vs
		}
	}
}

// resetHeader prepares dst.Header for reuse: every key but the two
// envelope headers is removed; those keep their value slices for
// setHeader to overwrite. When the map holds only envelope headers (the
// common case for a pooled message) it is not iterated.
func resetHeader(dst *nats.Msg, extra int) nats.Header {
	h := dst.Header
	if h == nil {
		h = make(nats.Header, 2+extra)
		dst.Header = h
		return h
	}
	dropForeign(h)
	return h
}

// dropForeign removes every key of h except the two envelope headers.
func dropForeign(h nats.Header) {
	ours := 0
	if _, ok := h[HeaderPrincipal]; ok {
		ours++
	}
	if _, ok := h[HeaderEnvelope]; ok {
		ours++
	}
	if len(h) == ours {
		return
	}
	for k := range h {
		if k != HeaderPrincipal && k != HeaderEnvelope {
			delete(h, k)
		}
	}
}

// setHeader sets k to the single value v, reusing the value slice; an
// empty v removes k.
func setHeader(h nats.Header, k, v string) {
	if v == "" {
		delete(h, k)
		return
	}
	vs := h[k]
	if cap(vs) > 0 {
		h[k] = append(vs[:0], v)
		return
	}
	h[k] = []string{v}
}

// one returns the single value of header k; ok is false when k is missing
// or repeated.
func one(h nats.Header, k string) (v string, ok bool) {
	vs := h[k]
	if len(vs) != 1 {
		return "", false
	}
	return vs[0], true
}

// claimedPrincipal returns the Astrid-Principal header of an outside
// message, looked up in any letter case, if it is a valid principal id.
func claimedPrincipal(h nats.Header) string {
	if vs := h[HeaderPrincipal]; len(vs) > 0 {
		if ValidPrincipal(vs[0]) {
			return vs[0]
		}
		return DefaultPrincipal
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, HeaderPrincipal) {
			if ValidPrincipal(vs[0]) {
				return vs[0]
			}
			break
		}
	}
	return DefaultPrincipal
}

// foreignHeaders returns the non-Astrid headers of h, or nil when there
// are none (the common case, which does not allocate).
func foreignHeaders(h nats.Header) nats.Header {
	n := 0
	for k := range h {
		if !isAstridHeader(k) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make(nats.Header, n)
	for k, vs := range h {
		if !isAstridHeader(k) {
			out[k] = vs
		}
	}
	return out
}

// Decode turns a received NATS message into a Message, applying the trust
// rule: if the signature in the Astrid-Env header verifies under key, the
// stamped envelope is trusted as is. Otherwise the message comes from an
// outside client: its principal is the Astrid-Principal header when that
// is a valid principal id and DefaultPrincipal otherwise, its attribution
// is Claimed, its origin OriginExternal, its time the receive time, and
// the rest of its Astrid-Env header is ignored. With an empty key nothing
// verifies.
//
// Payload and Header alias m. Decode does not allocate for a stamped
// message without foreign headers. It is safe for concurrent use.
func Decode(m *nats.Msg, subjects Subjects, key []byte) Message {
	out := Message{Topic: subjects.Topic(m.Subject), Payload: m.Data, Reply: m.Reply}
	h := m.Header
	if len(h) == 0 {
		out.Principal = DefaultPrincipal
		out.Attribution = Claimed
		out.Origin = OriginExternal
		out.Time = time.Now().UTC()
		return out
	}
	if len(key) > 0 && verifyInto(&out, m, h, key) {
		out.Header = foreignHeaders(h)
		return out
	}
	out.Principal = claimedPrincipal(h)
	out.Attribution = Claimed
	out.Origin = OriginExternal
	out.Time = time.Now().UTC()
	out.Header = foreignHeaders(h)
	return out
}

// verifyInto checks the signature of a stamped message and, if it holds
// and every field parses, fills the envelope fields of out.
func verifyInto(out *Message, m *nats.Msg, h nats.Header, key []byte) bool {
	v, ok := one(h, HeaderEnvelope)
	if !ok {
		return false
	}
	e, ok := splitEnvelope(v)
	if !ok || len(e.sig) != sigLen {
		return false
	}
	principal := ""
	if vs := h[HeaderPrincipal]; len(vs) > 1 {
		return false
	} else if len(vs) == 1 {
		principal = vs[0]
	}

	pool := macPoolFor(key)
	st := pool.Get().(*macState)
	sum := computeMAC(st, m.Subject, m.Reply, principal, e.signed, m.Data)
	var enc [64]byte
	base64.RawURLEncoding.Encode(enc[:sigLen], sum)
	pool.Put(st)
	if subtle.ConstantTimeCompare(enc[:sigLen], []byte(e.sig)) != 1 {
		return false
	}

	attr, ok := parseAttribution(e.attribution)
	if !ok {
		return false
	}
	seq, ok1 := parseDecimal(e.seq)
	ns, ok2 := parseDecimal(e.ts)
	source, ok3 := parseToken(e.source)
	origin, ok4 := parseToken(e.origin)
	node, ok5 := parseToken(e.node)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || ns > math.MaxInt64 {
		return false
	}
	out.Principal = principal
	out.Attribution = attr
	out.Source = source
	out.Seq = seq
	out.Time = time.Unix(0, int64(ns)).UTC()
	out.Origin = origin
	out.Node = node
	return true
}
