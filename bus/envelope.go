package bus

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names of the kernel-stamped envelope. The body of a NATS message is
// the JSON payload only; everything else rides in these headers.
const (
	// HeaderPrincipal carries the principal id. From an outside client it
	// is a claim; on a stamped message it is what the host decided.
	HeaderPrincipal = "Astrid-Principal"
	// HeaderAttribution is "system", "verified" or "claimed".
	HeaderAttribution = "Astrid-Attribution"
	// HeaderSource is the publishing capsule's load-session UUID.
	HeaderSource = "Astrid-Source"
	// HeaderSeq is the stamping node's monotonic sequence number (decimal).
	HeaderSeq = "Astrid-Seq"
	// HeaderTs is the publish time, RFC 3339 with nanoseconds, UTC.
	HeaderTs = "Astrid-Ts"
	// HeaderOrigin is "local", "remote", "system" or "external".
	HeaderOrigin = "Astrid-Origin"
	// HeaderNode is the id of the node that stamped the message.
	HeaderNode = "Astrid-Node"
	// HeaderSig is the HMAC-SHA256 of the envelope, base64url without
	// padding.
	HeaderSig = "Astrid-Sig"
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

// envelopeFields are the signed header values, exactly as they travel,
// except seq and ts, which computeMAC takes separately.
type envelopeFields struct {
	subject, reply, principal, attribution, source, origin, node string
}

// appendField appends a length-prefixed string.
func appendField[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// computeMAC computes the envelope signature into st.sum. The MAC covers
// the NATS subject and reply subject, every stamped field and the payload,
// each length-prefixed, under a version tag. seq and ts are the header
// values exactly as sent (bytes when stamping, strings when verifying).
func computeMAC[T string | []byte](st *macState, f *envelopeFields, seq, ts T, payload []byte) []byte {
	b := append(st.buf[:0], "astrid-envelope-v1"...)
	b = appendField(b, f.subject)
	b = appendField(b, f.reply)
	b = appendField(b, f.principal)
	b = appendField(b, f.attribution)
	b = appendField(b, f.source)
	b = appendField(b, seq)
	b = appendField(b, ts)
	b = appendField(b, f.origin)
	b = appendField(b, f.node)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	st.buf = b
	st.h.Reset()
	st.h.Write(b)
	st.h.Write(payload)
	return st.h.Sum(st.sum[:0])
}

// sigLen is the length of a base64url (unpadded) SHA-256 MAC.
var sigLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

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
	node string
	key  []byte
	pool *sync.Pool
	seq  atomic.Uint64
}

// NewStamper returns a Stamper for the node id node, signing with key
// (at least MinKeyBytes bytes; every node that must trust this node's
// stamps shares it). The key is copied.
func NewStamper(key []byte, node string) (*Stamper, error) {
	if len(key) < MinKeyBytes {
		return nil, ErrWeakKey
	}
	return &Stamper{node: node, key: append([]byte(nil), key...), pool: macPoolFor(key)}, nil
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
func (s *Stamper) StampTo(dst *nats.Msg, subject string, m *Message) {
	m.Seq = s.seq.Add(1)
	m.Time = time.Now().UTC()
	m.Node = s.node
	if m.Origin == "" {
		m.Origin = OriginSystem
	}
	attr := m.Attribution.String()

	// seq, ts and signature share one allocation.
	var scratch [128]byte
	b := strconv.AppendUint(scratch[:0], m.Seq, 10)
	seqEnd := len(b)
	b = m.Time.AppendFormat(b, time.RFC3339Nano)
	tsEnd := len(b)

	st := s.pool.Get().(*macState)
	f := envelopeFields{
		subject: subject, reply: m.Reply, principal: m.Principal, attribution: attr,
		source: m.Source, origin: m.Origin, node: m.Node,
	}
	sum := computeMAC(st, &f, b[:seqEnd], b[seqEnd:tsEnd], m.Payload)
	b = base64.RawURLEncoding.AppendEncode(b, sum)
	s.pool.Put(st)
	dyn := string(b)

	h := resetHeader(dst, len(m.Header))
	for k, vs := range m.Header {
		if !isAstridHeader(k) {
			h[k] = vs
		}
	}
	setHeader(h, HeaderPrincipal, m.Principal)
	setHeader(h, HeaderAttribution, attr)
	setHeader(h, HeaderSource, m.Source)
	setHeader(h, HeaderSeq, dyn[:seqEnd])
	setHeader(h, HeaderTs, dyn[seqEnd:tsEnd])
	setHeader(h, HeaderOrigin, m.Origin)
	setHeader(h, HeaderNode, m.Node)
	setHeader(h, HeaderSig, dyn[tsEnd:])
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
	for k, vs := range m.Header {
		if !isAstridHeader(k) {
			h[k] = vs
		}
	}
	setHeader(h, HeaderPrincipal, m.Principal)
	dst.Subject = subject
	dst.Reply = m.Reply
	dst.Data = m.Payload
}

// resetHeader prepares dst.Header for reuse: foreign keys are removed and
// Astrid-* keys keep their value slices for setHeader to overwrite.
func resetHeader(dst *nats.Msg, extra int) nats.Header {
	h := dst.Header
	if h == nil {
		h = make(nats.Header, 8+extra)
		dst.Header = h
		return h
	}
	for k := range h {
		switch k {
		case HeaderPrincipal, HeaderAttribution, HeaderSource, HeaderSeq,
			HeaderTs, HeaderOrigin, HeaderNode, HeaderSig:
		default:
			delete(h, k)
		}
	}
	return h
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
	switch len(vs) {
	case 0:
		return "", true
	case 1:
		return vs[0], true
	default:
		return "", false
	}
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
// rule: if the Astrid-Sig header verifies under key, the stamped envelope
// is trusted as is. Otherwise the message comes from an outside client:
// its principal is the Astrid-Principal header when that is a valid
// principal id and DefaultPrincipal otherwise, its attribution is Claimed,
// its origin OriginExternal, its time the receive time, and its Source,
// Seq and Node headers are ignored. With an empty key nothing verifies.
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
	sig, ok := one(h, HeaderSig)
	if !ok || len(sig) != sigLen {
		return false
	}
	var f envelopeFields
	var seqS, tsS string
	var ok1, ok2, ok3, ok4, ok5, ok6, ok7 bool
	f.principal, ok1 = one(h, HeaderPrincipal)
	f.attribution, ok2 = one(h, HeaderAttribution)
	f.source, ok3 = one(h, HeaderSource)
	seqS, ok4 = one(h, HeaderSeq)
	tsS, ok5 = one(h, HeaderTs)
	f.origin, ok6 = one(h, HeaderOrigin)
	f.node, ok7 = one(h, HeaderNode)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return false
	}
	f.subject = m.Subject
	f.reply = m.Reply

	pool := macPoolFor(key)
	st := pool.Get().(*macState)
	sum := computeMAC(st, &f, seqS, tsS, m.Data)
	var enc [64]byte
	base64.RawURLEncoding.Encode(enc[:sigLen], sum)
	pool.Put(st)
	var diff byte
	for i := 0; i < sigLen; i++ {
		diff |= enc[i] ^ sig[i]
	}
	if diff != 0 {
		return false
	}

	attr, ok := parseAttribution(f.attribution)
	if !ok {
		return false
	}
	seq, err := strconv.ParseUint(seqS, 10, 64)
	if err != nil {
		return false
	}
	ts, err := time.Parse(time.RFC3339Nano, tsS)
	if err != nil {
		return false
	}
	out.Principal = f.principal
	out.Attribution = attr
	out.Source = f.source
	out.Seq = seq
	out.Time = ts
	out.Origin = f.origin
	out.Node = f.node
	return true
}
