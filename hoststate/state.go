package hoststate

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
)

// Limits from the reference (astrid-semantics.md §4, §5) enforced by State.
const (
	MaxTopicBytes      = 256
	MaxPayloadBytes    = 1 << 20
	MaxSubscriptions   = 128
	MaxRecvTimeout     = 60 * time.Second
	MaxSleep           = 60 * time.Second
	MaxRandomBytes     = 4096
	MaxKVKeyBytes      = 256
	MaxKVValueBytes    = 1 << 20
	MaxKVListKeys      = 1024
	MaxLogMessageBytes = 64 << 10
	// DefaultIPCBytesPerSecond is the default per-(capsule, principal) IPC
	// budget: 10 MiB in a fixed one-second window.
	DefaultIPCBytesPerSecond = 10 << 20
	// DefaultPrincipal is the single-user sentinel principal.
	DefaultPrincipal = "default"
)

// Phase is the lifecycle phase the capsule is executing in.
type Phase uint8

// Lifecycle phases. PhaseNone is normal runtime.
const (
	PhaseNone Phase = iota
	PhaseInstall
	PhaseUpgrade
)

func (p Phase) String() string {
	switch p {
	case PhaseInstall:
		return "install"
	case PhaseUpgrade:
		return "upgrade"
	default:
		return "none"
	}
}

// Binding is an interceptor binding from the manifest's [subscribe] table
// (an entry with a handler).
type Binding struct {
	HandleID uint64 `json:"handle_id"`
	Action   string `json:"action"`
	Topic    string `json:"topic"`
	Priority uint32 `json:"-"`
}

// Transport is what State needs from the message bus. The actors package
// implements it over a *bus.Conn.
type Transport interface {
	// Publish sends m; the transport stamps and signs the envelope. It
	// must not retain m or m.Payload after it returns: State reuses m for
	// the next message, and m.Payload may be a view of guest memory that
	// the guest overwrites as soon as the host call returns.
	Publish(m *bus.Message) error
	// Reply answers the request whose reply subject is subject. It must
	// not retain m or m.Payload after it returns, as for Publish.
	Reply(subject string, m *bus.Message) error
	// Subscribe delivers every message whose topic matches pattern (route
	// grammar: a trailing * is a subtree) to deliver until the returned
	// cancel function is called.
	Subscribe(pattern string, deliver func(*bus.Message)) (cancel func(), err error)
}

// KVStore is the durable store behind the kv host functions; *bus.KV
// implements it. ns is "{principal}:capsule:{capsule_id}".
type KVStore interface {
	Get(ctx context.Context, ns, key string) ([]byte, uint64, error)
	Put(ctx context.Context, ns, key string, val []byte) (uint64, error)
	Delete(ctx context.Context, ns, key string) error
	Keys(ctx context.Context, ns, prefix string, limit int) ([]string, error)
	CAS(ctx context.Context, ns, key string, expected []byte, expectAbsent bool, val []byte) (uint64, error)
	ClearPrefix(ctx context.Context, ns, prefix string) (int, error)
}

// Config is what a capsule's State is built from.
type Config struct {
	// CapsuleID is the manifest's package name.
	CapsuleID string
	// Version is the capsule's package version, for logs and events.
	Version string
	// Owner is the principal the capsule is loaded for; "default" when empty.
	Owner string
	// Env holds the resolved non-secret [env] values.
	Env map[string]string
	// SecretKeys are the [env] keys of type secret; they are never held in
	// Env and resolve through Secrets.
	SecretKeys []string
	// Publish and Subscribe are the ACL patterns (keys of [publish] and
	// [subscribe]). Empty means deny all.
	Publish, Subscribe []string
	// Bindings are the interceptor bindings, with handle ids assigned.
	Bindings []Binding
	// IPCBytesPerSecond overrides DefaultIPCBytesPerSecond when > 0.
	IPCBytesPerSecond int
	// Phase is the lifecycle phase for install/upgrade instances.
	Phase Phase
	// PreviousVersion is set in PhaseUpgrade.
	PreviousVersion string
	// Secrets resolves secret-typed [env] keys live (never cached here);
	// nil means no secret store (secret keys read as not-found).
	Secrets SecretStore
	// Elicitor answers elicit calls in the install/upgrade phases; nil
	// means elicit fails with internal.
	Elicitor Elicitor
	// Logs receives guest log lines (per-principal log files); nil means
	// the node log only.
	Logs LogSink
	// Profiles gives each invoking principal's quotas; nil means
	// DefaultProfile for everyone.
	Profiles Profiles
	// Config holds stored [env] values, consulted before manifest
	// defaults; nil means defaults only.
	Config ConfigStore
	// OnQuota is told about every call refused by a quota (events,
	// metrics); it must not block.
	OnQuota func(QuotaEvent)
}

// State is the per-incarnation host state behind every host function a
// capsule calls: the Go counterpart of astrid-capsule's HostState.
//
// # Concurrency
//
// State is owned by exactly one capsule actor and is never shared between
// capsules. Host functions run on the goroutine executing the guest: the
// actor's goroutine for handler calls, or the run goroutine the actor starts
// and waits for while a run-loop capsule's run export executes. The actor
// never calls into State while run is executing, so State needs no locks.
// The exceptions are the Inbox (goroutine-safe, fed by NATS callbacks),
// Ready/SignalReady (a channel closed once) and Cancel (context), which may
// be used from any goroutine.
type State struct {
	capsuleID string
	version   string
	owner     string
	session   string // per-load session UUID, stamped as the envelope source
	ownerNS   string

	env        map[string]string
	secretKeys map[string]struct{}
	publish    []string
	subscribe  []string
	bindings   []Binding
	phase      Phase
	prevVer    string
	secrets    SecretStore
	elicitor   Elicitor
	logs       LogSink
	profiles   Profiles
	config     ConfigStore
	onQuota    func(QuotaEvent)

	// caller is the message being handled (the invocation context); nil
	// between invocations and after an empty poll.
	caller *bus.Message
	// invocationNS is set when the caller's principal differs from the
	// owner; effectiveNS prefers it (the seed's effective_kv).
	invocationNS string
	replied      bool
	// invoking is set between BeginInvocation and EndInvocation: a recv or
	// poll nested in an interceptor call neither replaces nor clears the
	// interceptor's context (astrid-semantics.md §6.2).
	invoking bool

	limiter *RateLimiter

	// out is the message Publish and Reply hand to the transport, reused
	// so that a publish does not allocate one.
	out bus.Message
	// lastAllowed is the last topic the [publish] ACL allowed (the ACL
	// never changes), so a capsule publishing on one topic in a loop
	// matches the ACL once.
	lastAllowed string

	transport Transport
	kv        KVStore
	inbox     *Inbox
	log       zerolog.Logger

	subs      map[uint64]func()
	subCount  int
	firstSub  uint64 // the first handle ipc_subscribe hands out
	nextSub   uint64
	readyOnce sync.Once
	ready     chan struct{}

	ctx    context.Context
	cancel context.CancelCauseFunc

	// current is the delivery the run loop took last (ipc_recv/ipc_poll):
	// the message it is handling if it crashes before asking for another.
	current *Delivery

	// Slot is the result slot of docs/abi.md, owned by the instance that
	// runs with this State.
	Slot []byte
}

// New builds a State. ctx is the incarnation context: cancelling it (or
// calling Cancel) ends every blocking host call with ErrCancelled.
func New(ctx context.Context, cfg Config, t Transport, kv KVStore, inbox *Inbox, log zerolog.Logger) *State {
	owner := cfg.Owner
	if owner == "" {
		owner = DefaultPrincipal
	}
	ictx, cancel := context.WithCancelCause(ctx)
	s := &State{
		capsuleID: cfg.CapsuleID,
		version:   cfg.Version,
		owner:     owner,
		session:   uuid.NewString(),
		ownerNS:   Namespace(owner, cfg.CapsuleID),
		env:       cfg.Env,
		publish:   cfg.Publish,
		subscribe: cfg.Subscribe,
		bindings:  cfg.Bindings,
		phase:     cfg.Phase,
		prevVer:   cfg.PreviousVersion,
		secrets:   cfg.Secrets,
		elicitor:  cfg.Elicitor,
		logs:      cfg.Logs,
		profiles:  cfg.Profiles,
		config:    cfg.Config,
		onQuota:   cfg.OnQuota,
		limiter:   NewRateLimiter(cfg.IPCBytesPerSecond),
		transport: t,
		kv:        kv,
		inbox:     inbox,
		log:       log,
		subs:      map[uint64]func(){},
		ready:     make(chan struct{}),
		cancel:    cancel,
	}
	s.ctx = context.WithValue(ictx, stateKey{}, s)
	s.secretKeys = make(map[string]struct{}, len(cfg.SecretKeys))
	for _, k := range cfg.SecretKeys {
		s.secretKeys[k] = struct{}{}
	}
	var maxID uint64
	for _, b := range cfg.Bindings {
		maxID = max(maxID, b.HandleID)
	}
	s.nextSub = maxID + 1
	s.firstSub = s.nextSub
	s.subCount = len(cfg.Bindings)
	return s
}

// Namespace returns the KV namespace "{principal}:capsule:{capsule_id}".
// ':' is not a legal principal character, so namespaces cannot collide.
func Namespace(principal, capsuleID string) string {
	return principal + ":capsule:" + capsuleID
}

// CapsuleID returns the capsule id.
func (s *State) CapsuleID() string { return s.capsuleID }

// Owner returns the principal the capsule was loaded for.
func (s *State) Owner() string { return s.owner }

// Session returns the per-load session UUID.
func (s *State) Session() string { return s.session }

// Phase returns the lifecycle phase.
func (s *State) Phase() Phase { return s.phase }

// PreviousVersion returns the version being upgraded from (PhaseUpgrade).
func (s *State) PreviousVersion() string { return s.prevVer }

// Context returns the incarnation context.
func (s *State) Context() context.Context { return s.ctx }

// Cancel cancels every blocking host call of this incarnation. Safe from
// any goroutine.
func (s *State) Cancel(cause error) { s.cancel(cause) }

// Inbox returns the inbox feeding recv/poll.
func (s *State) Inbox() *Inbox { return s.inbox }

// Bindings returns the interceptor bindings.
func (s *State) Bindings() []Binding { return s.bindings }

// SubscriptionCount returns the number of live subscriptions, interceptor
// bindings included (O(1)).
func (s *State) SubscriptionCount() int { return s.subCount }

// Logger returns the capsule's logger.
func (s *State) Logger() *zerolog.Logger { return &s.log }

// SignalReady marks the capsule ready; idempotent. Safe from any goroutine.
func (s *State) SignalReady() {
	s.readyOnce.Do(func() {
		// Readiness promises routability: the server must have every
		// subscription made so far before anyone is told.
		if f, ok := s.transport.(interface{ Flush() error }); ok && f != nil {
			if err := f.Flush(); err != nil {
				s.log.Warn().Err(err).Msg("flush before readiness")
			}
		}
		close(s.ready)
	})
}

// Ready is closed once the capsule has signalled readiness.
func (s *State) Ready() <-chan struct{} { return s.ready }

// ---- invocation context -------------------------------------------------

// Caller returns the message being handled, or nil.
func (s *State) Caller() *bus.Message { return s.caller }

// EffectivePrincipal is the invoking principal of the message being
// handled, else the owner. A caller principal that is not a valid principal
// id (1-64 bytes of [a-zA-Z0-9_-]) falls back to the owner, as the seed's
// effective_principal does, so it can never reach a KV namespace or a rate
// limiter key.
func (s *State) EffectivePrincipal() string {
	if s.caller != nil && bus.ValidPrincipal(s.caller.Principal) {
		return s.caller.Principal
	}
	return s.owner
}

// EffectiveNamespace is the KV namespace host calls use right now: the
// invoking principal's when it differs from the owner (the seed's
// invocation_kv overlay), else the owner's.
func (s *State) EffectiveNamespace() string {
	if s.invocationNS != "" {
		return s.invocationNS
	}
	return s.ownerNS
}

// BeginInvocation installs msg as the invocation context for an
// interceptor call. EndInvocation must follow on every exit path. Until
// then a recv or poll made by the handler leaves the context alone.
func (s *State) BeginInvocation(msg *bus.Message) {
	s.installContext(msg)
	s.replied = false
	s.invoking = true
}

// EndInvocation clears the invocation context installed by BeginInvocation.
func (s *State) EndInvocation() {
	s.clearContext()
	s.invoking = false
}

// InstallRecvContext installs the invocation context for a message picked
// up by recv/poll (the seed's install_recv_invocation_context). Fast path:
// when the principal is unchanged only the caller message is replaced and
// the KV namespace overlay is kept.
func (s *State) InstallRecvContext(msg *bus.Message) {
	s.replied = false
	if s.caller != nil && msg != nil && s.caller.Principal == msg.Principal {
		s.caller = msg
		return
	}
	s.installContext(msg)
}

// ClearRecvContext tears the recv invocation context down (the seed's
// clear_recv_invocation_context); called on an empty poll or a recv
// timeout so a previous publisher's context cannot leak into later host
// calls.
func (s *State) ClearRecvContext() { s.clearContext() }

// InFlight returns the delivery the run loop took last, nil if it has
// asked for another since (an empty poll or a timeout clears it too). Read
// it only after the run goroutine has ended.
func (s *State) InFlight() *Delivery { return s.current }

func (s *State) installContext(msg *bus.Message) {
	s.caller = msg
	s.invocationNS = ""
	if msg != nil && bus.ValidPrincipal(msg.Principal) && msg.Principal != s.owner {
		s.invocationNS = Namespace(msg.Principal, s.capsuleID)
	}
}

func (s *State) clearContext() {
	s.current = nil
	s.caller = nil
	s.invocationNS = ""
	s.replied = false
}

// Replied reports whether the guest answered the current invocation with
// ipc_reply.
func (s *State) Replied() bool { return s.replied }

// ---- ipc ---------------------------------------------------------------

func (s *State) alive() error {
	if s.ctx.Err() != nil {
		return errf(CodeClosed, "capsule is stopping")
	}
	return nil
}

func checkPayload(payload []byte) error {
	if len(payload) > MaxPayloadBytes {
		return errf(CodeTooLarge, "payload is %d bytes; the limit is %d", len(payload), MaxPayloadBytes)
	}
	if !validJSON(payload) {
		return errf(CodeInvalidInput, "payload is not valid JSON")
	}
	return nil
}

func topicError(err error) error {
	var te *bus.TopicError
	if errors.As(err, &te) && te.TooLarge {
		return errf(CodeTooLarge, "%s", te.Reason)
	}
	if errors.As(err, &te) {
		return errf(CodeInvalidInput, "%s", te.Reason)
	}
	return errf(CodeInvalidInput, "%v", err)
}

// Publish implements ipc_publish. The checks run in this order, so a
// refused publish is never charged to the rate limiter: topic and payload
// size (too-large), topic syntax (invalid-input), the [publish] ACL
// (capability-denied; an empty ACL denies all), JSON (invalid-input), then
// the IPC budget of the effective principal (rate-limited). The message is
// then stamped by the host and handed to the transport.
func (s *State) Publish(topic string, payload []byte) error {
	if err := s.alive(); err != nil {
		return err
	}
	if len(topic) > MaxTopicBytes {
		return errf(CodeTooLarge, "topic is %d bytes; the limit is %d", len(topic), MaxTopicBytes)
	}
	if len(payload) > MaxPayloadBytes {
		return errf(CodeTooLarge, "payload is %d bytes; the limit is %d", len(payload), MaxPayloadBytes)
	}
	if err := bus.ValidateTopic(topic); err != nil {
		return topicError(err)
	}
	if topic != s.lastAllowed {
		if !s.mayPublish(topic) {
			return errf(CodeCapabilityDenied, "topic %q is not in the [publish] table", topic)
		}
		s.lastAllowed = topic
	}
	if !validJSON(payload) {
		return errf(CodeInvalidInput, "payload is not valid JSON")
	}
	principal := s.EffectivePrincipal()
	limit := s.effectiveProfile().IPCBytesPerSec
	if !s.limiter.AllowN(principal, len(topic)+len(payload), limit, time.Now()) {
		s.quotaExceeded("ipc_bytes_per_sec", int64(limit))
		return errf(CodeRateLimited, "IPC budget of %d bytes/s exhausted for principal %s", limit, principal)
	}
	m := s.outgoing(topic, payload)
	err := s.transport.Publish(m)
	m.Payload = nil // do not keep the guest's payload alive until the next publish
	if err != nil {
		return errf(CodeInternal, "publish failed")
	}
	return nil
}

// Reply implements ipc_reply: answers the message being handled.
func (s *State) Reply(payload []byte) error {
	if err := s.alive(); err != nil {
		return err
	}
	if s.caller == nil || s.caller.Reply == "" {
		return errf(CodeNotFound, "the message being handled has no reply subject")
	}
	if err := checkPayload(payload); err != nil {
		return err
	}
	principal := s.EffectivePrincipal()
	if limit := s.effectiveProfile().IPCBytesPerSec; !s.limiter.AllowN(principal, len(payload), limit, time.Now()) {
		s.quotaExceeded("ipc_bytes_per_sec", int64(limit))
		return errf(CodeRateLimited, "IPC budget exhausted for principal %s", principal)
	}
	m := s.outgoing(s.caller.Topic, payload)
	err := s.transport.Reply(s.caller.Reply, m)
	m.Payload = nil
	if err != nil {
		return errf(CodeInternal, "reply failed")
	}
	s.replied = true
	return nil
}

// outgoing builds the envelope of a guest publish in s.out, which every
// publish and reply reuses (the Transport does not retain it). The
// principal and attribution follow the invocation: a message handled for a
// claimed principal stays claimed downstream; with no caller it is the
// owner, verified by this host.
func (s *State) outgoing(topic string, payload []byte) *bus.Message {
	m := &s.out
	*m = bus.Message{Topic: topic, Payload: payload, Source: s.session}
	if s.caller != nil && s.caller.Principal != "" {
		m.Principal = s.caller.Principal
		m.Attribution = s.caller.Attribution
		m.Origin = s.caller.Origin
	} else {
		m.Principal = s.owner
		m.Attribution = bus.Verified
		m.Origin = bus.OriginLocal
	}
	return m
}

func (s *State) mayPublish(topic string) bool {
	for _, p := range s.publish {
		if bus.MatchRoute(p, topic) {
			return true
		}
	}
	return false
}

func (s *State) maySubscribe(pattern string) bool {
	for _, p := range s.subscribe {
		if bus.CoversRoute(p, pattern) {
			return true
		}
	}
	return false
}

// Subscribe implements ipc_subscribe and returns the new handle.
func (s *State) Subscribe(pattern string) (uint64, error) {
	if err := s.alive(); err != nil {
		return 0, err
	}
	if err := bus.ValidatePattern(pattern); err != nil {
		return 0, topicError(err)
	}
	if !s.maySubscribe(pattern) {
		return 0, errf(CodeCapabilityDenied, "pattern %q is not covered by the [subscribe] table", pattern)
	}
	if limit := min(MaxSubscriptions, s.effectiveProfile().MaxSubscriptions); s.subCount >= limit {
		s.quotaExceeded("max_subscriptions", int64(limit))
		return 0, errf(CodeQuota, "at most %d subscriptions per capsule", limit)
	}
	h := s.nextSub
	inbox := s.inbox
	cancel, err := s.transport.Subscribe(pattern, func(m *bus.Message) {
		inbox.Push(&Delivery{Handle: h, Msg: m})
	})
	if err != nil {
		return 0, errf(CodeInternal, "subscribe failed")
	}
	s.nextSub++
	s.subs[h] = cancel
	s.subCount++
	return h, nil
}

// Unsubscribe implements ipc_unsubscribe.
func (s *State) Unsubscribe(h uint64) error {
	cancel, ok := s.subs[h]
	if !ok {
		if s.isBinding(h) {
			return errf(CodeInvalidInput, "interceptor binding %d cannot be unsubscribed", h)
		}
		if s.closedHandle(h) {
			return errf(CodeClosed, "subscription %d is already closed", h)
		}
		return errf(CodeNotFound, "no subscription %d", h)
	}
	cancel()
	delete(s.subs, h)
	s.subCount--
	s.inbox.RemoveHandle(h)
	return nil
}

// closedHandle reports whether h was handed out by Subscribe and has been
// closed since.
func (s *State) closedHandle(h uint64) bool {
	_, live := s.subs[h]
	return !live && h >= s.firstSub && h < s.nextSub
}

func (s *State) isBinding(h uint64) bool {
	for _, b := range s.bindings {
		if b.HandleID == h {
			return true
		}
	}
	return false
}

// checkHandle accepts 0 (any), a live subscription or a binding; a closed
// subscription gives closed and anything else not-found.
func (s *State) checkHandle(h uint64) error {
	if h == 0 || s.isBinding(h) {
		return nil
	}
	if _, ok := s.subs[h]; ok {
		return nil
	}
	if s.closedHandle(h) {
		return errf(CodeClosed, "subscription %d is closed", h)
	}
	return errf(CodeNotFound, "no subscription %d", h)
}

// Poll implements ipc_poll: one message or (nil, nil) when none is queued.
// A message installs its invocation context and an empty poll clears it,
// except inside an interceptor call, whose context stays in place.
func (s *State) Poll(h uint64) (*Delivery, error) {
	if err := s.checkHandle(h); err != nil {
		return nil, err
	}
	d, ok := s.inbox.Poll(h)
	if !ok {
		if !s.invoking {
			s.ClearRecvContext()
		}
		return nil, nil
	}
	if !s.invoking {
		s.InstallRecvContext(d.Msg)
		s.current = d
	}
	return d, nil
}

// Recv implements ipc_recv: blocks up to min(timeout, 60 s) for one
// message. It ends early with ErrCancelled when ctx (the guest call's
// context, which carries its deadline) or the incarnation ends, and with
// ErrClosed when the inbox is closed. The invocation context is handled as
// in Poll.
func (s *State) Recv(ctx context.Context, h uint64, timeout time.Duration) (*Delivery, error) {
	if err := s.checkHandle(h); err != nil {
		return nil, err
	}
	if s.ctx.Err() != nil {
		return nil, ErrCancelled
	}
	timeout = min(max(timeout, 0), MaxRecvTimeout)
	ctx, done := s.callContext(ctx)
	d, err := s.inbox.Wait(ctx, h, timeout)
	done()
	if err != nil {
		if !s.invoking {
			s.ClearRecvContext()
		}
		return nil, err
	}
	if !s.invoking {
		s.InstallRecvContext(d.Msg)
		s.current = d
	}
	return d, nil
}

type stateKey struct{}

// callContext returns the context a blocking host call waits on: ctx
// itself when it derives from the incarnation context (the capsule
// package's call contexts do; the check is one Value lookup), else ctx
// joined with the incarnation context. A nil ctx means the incarnation
// context. done must be called when the wait is over.
func (s *State) callContext(ctx context.Context) (context.Context, func()) {
	if ctx == nil {
		return s.ctx, func() {}
	}
	if st, _ := ctx.Value(stateKey{}).(*State); st == s {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// CloseSubscriptions cancels every NATS subscription of this incarnation.
// The actor calls it when the incarnation ends.
func (s *State) CloseSubscriptions() {
	for h, cancel := range s.subs {
		cancel()
		delete(s.subs, h)
	}
	s.subCount = len(s.bindings)
}

// ---- kv ----------------------------------------------------------------

// checkKey applies the key rules of docs/abi.md, the same as bus.KV's:
// 1-256 bytes of UTF-8 without NUL or control characters (C0, DEL and C1).
func checkKey(key string) error {
	if len(key) == 0 {
		return errf(CodeInvalidInput, "empty key")
	}
	if len(key) > MaxKVKeyBytes {
		return errf(CodeTooLarge, "key is %d bytes; the limit is %d", len(key), MaxKVKeyBytes)
	}
	if !utf8.ValidString(key) {
		return errf(CodeInvalidInput, "key is not valid UTF-8")
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return errf(CodeInvalidInput, "key contains a control character")
		}
	}
	return nil
}

func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkKey(prefix)
}

func kvErr(err error) error {
	var he *Error
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, bus.ErrKeyNotFound):
		return ErrNotFound
	case errors.Is(err, bus.ErrCASMismatch):
		return ErrCASMismatch
	case errors.Is(err, bus.ErrTooManyKeys):
		return errf(CodeTooLarge, "more than %d keys match; use a longer prefix", MaxKVListKeys)
	case errors.Is(err, bus.ErrTooLarge):
		return errf(CodeTooLarge, "key or value too large")
	case errors.Is(err, bus.ErrInvalidKey):
		return errf(CodeInvalidInput, "invalid key")
	case errors.Is(err, context.Canceled):
		return ErrCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	}
	return errf(CodeInternal, "kv store unavailable")
}

func (s *State) kvReady() error {
	if err := s.alive(); err != nil {
		return err
	}
	if s.kv == nil {
		return errf(CodeInternal, "kv store unavailable")
	}
	return nil
}

// The kv methods take the guest call's context (which carries its deadline
// and derives from the incarnation context); nil means the incarnation
// context.

// KVGet implements kv_get.
func (s *State) KVGet(ctx context.Context, key string) ([]byte, error) {
	if err := s.kvReady(); err != nil {
		return nil, err
	}
	kvCtx, done := s.callContext(ctx)
	defer done()
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v, _, err := s.kv.Get(kvCtx, s.EffectiveNamespace(), key)
	if err != nil {
		return nil, kvErr(err)
	}
	return v, nil
}

// KVSet implements kv_set.
func (s *State) KVSet(ctx context.Context, key string, val []byte) error {
	if err := s.kvReady(); err != nil {
		return err
	}
	kvCtx, done := s.callContext(ctx)
	defer done()
	if err := checkKey(key); err != nil {
		return err
	}
	if len(val) > MaxKVValueBytes {
		return errf(CodeTooLarge, "value is %d bytes; the limit is %d", len(val), MaxKVValueBytes)
	}
	if _, err := s.kv.Put(kvCtx, s.EffectiveNamespace(), key, val); err != nil {
		return kvErr(err)
	}
	return nil
}

// KVDelete implements kv_delete (idempotent).
func (s *State) KVDelete(ctx context.Context, key string) error {
	if err := s.kvReady(); err != nil {
		return err
	}
	kvCtx, done := s.callContext(ctx)
	defer done()
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.kv.Delete(kvCtx, s.EffectiveNamespace(), key); err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
		return kvErr(err)
	}
	return nil
}

// KVListKeys implements kv_list_keys (at most 1024 keys).
func (s *State) KVListKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := s.kvReady(); err != nil {
		return nil, err
	}
	kvCtx, done := s.callContext(ctx)
	defer done()
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	keys, err := s.kv.Keys(kvCtx, s.EffectiveNamespace(), prefix, MaxKVListKeys)
	if err != nil {
		return nil, kvErr(err)
	}
	return keys, nil
}

// KVCAS implements kv_cas; expectAbsent means create-if-absent.
func (s *State) KVCAS(ctx context.Context, key string, expected []byte, expectAbsent bool, val []byte) error {
	if err := s.kvReady(); err != nil {
		return err
	}
	kvCtx, done := s.callContext(ctx)
	defer done()
	if err := checkKey(key); err != nil {
		return err
	}
	if len(val) > MaxKVValueBytes {
		return errf(CodeTooLarge, "value is %d bytes; the limit is %d", len(val), MaxKVValueBytes)
	}
	if _, err := s.kv.CAS(kvCtx, s.EffectiveNamespace(), key, expected, expectAbsent, val); err != nil {
		return kvErr(err)
	}
	return nil
}

// KVClearPrefix implements kv_clear_prefix and returns the count deleted.
func (s *State) KVClearPrefix(ctx context.Context, prefix string) (int, error) {
	if err := s.kvReady(); err != nil {
		return 0, err
	}
	kvCtx, done := s.callContext(ctx)
	defer done()
	if err := checkPrefix(prefix); err != nil {
		return 0, err
	}
	n, err := s.kv.ClearPrefix(kvCtx, s.EffectiveNamespace(), prefix)
	if err != nil {
		return 0, kvErr(err)
	}
	return n, nil
}

// ---- sys ---------------------------------------------------------------

// Log levels of sys_log.
const (
	LevelTrace = 0
	LevelDebug = 1
	LevelInfo  = 2
	LevelWarn  = 3
	LevelError = 4
)

// LogSink receives every guest log line (sys_log and stdout/stderr) for
// the per-principal, per-capsule log files.
type LogSink interface {
	Write(principal, capsule string, level int32, msg string)
}

// Log implements sys_log: the line goes to the invoking principal's log
// file for this capsule and, at warn and above, to the node's log with
// capsule, principal and topic fields (below warn only at debug level).
func (s *State) Log(level int32, msg string) { s.LogStream(level, "", msg) }

// LogStream is Log for a guest output stream ("stdout", "stderr"; "" for
// sys_log).
func (s *State) LogStream(level int32, stream, msg string) {
	if len(msg) > MaxLogMessageBytes {
		msg = msg[:MaxLogMessageBytes]
	}
	principal := s.EffectivePrincipal()
	if s.logs != nil {
		s.logs.Write(principal, s.capsuleID, level, msg)
	}
	var ev *zerolog.Event
	switch {
	case level >= LevelError:
		ev = s.log.Error()
	case level == LevelWarn:
		ev = s.log.Warn()
	default:
		ev = s.log.Debug()
	}
	if !ev.Enabled() {
		return
	}
	ev = ev.Str("source", "guest").Str("principal", principal)
	if stream != "" {
		ev = ev.Str("stream", stream)
	}
	if s.caller != nil {
		ev = ev.Str("topic", s.caller.Topic)
	}
	ev.Msg(msg)
}

// GetConfig implements sys_get_config. Secret-typed keys are never held in
// memory; until the secret store lands they resolve to not-found.
func (s *State) GetConfig(key string) (string, error) {
	if _, secret := s.secretKeys[key]; secret {
		return s.secret(key)
	}
	if s.config != nil {
		if v, ok := s.config.Get(s.EffectivePrincipal(), s.capsuleID, key); ok {
			return v, nil
		}
	}
	v, ok := s.env[key]
	if !ok {
		return "", errf(CodeNotFound, "config key %q is not set", key)
	}
	return v, nil
}

// CallerInfo is the JSON shape of sys_get_caller.
type CallerInfo struct {
	Principal   string `json:"principal,omitempty"`
	Attribution string `json:"attribution,omitempty"`
	SourceID    string `json:"source_id,omitempty"`
	Topic       string `json:"topic,omitempty"`
	TS          string `json:"ts,omitempty"`
}

// GetCaller implements sys_get_caller.
func (s *State) GetCaller() CallerInfo {
	if s.caller == nil {
		return CallerInfo{}
	}
	c := CallerInfo{
		Principal:   s.caller.Principal,
		Attribution: s.caller.Attribution.String(),
		SourceID:    s.caller.Source,
		Topic:       s.caller.Topic,
	}
	if !s.caller.Time.IsZero() {
		c.TS = s.caller.Time.UTC().Format(time.RFC3339Nano)
	}
	return c
}

// Sleep implements sys_sleep_ns: at most 60 s; ErrCancelled when ctx (the
// guest call's context; nil means the incarnation context) or the
// incarnation ends first.
func (s *State) Sleep(ctx context.Context, d time.Duration) error {
	if s.ctx.Err() != nil {
		return ErrCancelled
	}
	d = min(max(d, 0), MaxSleep)
	ctx, done := s.callContext(ctx)
	defer done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ErrCancelled
	}
}

// RandomBytes implements sys_random_bytes (at most 4096 bytes).
func (s *State) RandomBytes(n int) ([]byte, error) {
	if n < 0 {
		return nil, errf(CodeInvalidInput, "negative length")
	}
	if n > MaxRandomBytes {
		return nil, errf(CodeTooLarge, "at most %d random bytes per call", MaxRandomBytes)
	}
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b, nil
}

// EnvelopeJSON renders a delivery as the ipc_recv/ipc_poll envelope of
// docs/abi.md.
func EnvelopeJSON(d *Delivery) []byte {
	m := d.Msg
	b := make([]byte, 0, 160+len(m.Payload)+len(m.Topic))
	b = append(b, `{"handle":`...)
	b = strconv.AppendUint(b, d.Handle, 10)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, m.Topic)
	b = append(b, `,"payload":`...)
	if len(m.Payload) == 0 || !validJSON(m.Payload) {
		// Outside publishers may send anything; non-JSON travels as a string.
		b = appendJSONString(b, string(m.Payload))
	} else {
		b = append(b, m.Payload...)
	}
	b = append(b, `,"principal":`...)
	b = appendJSONString(b, m.Principal)
	b = append(b, `,"attribution":"`...)
	b = append(b, m.Attribution.String()...)
	b = append(b, `","source_id":`...)
	b = appendJSONString(b, m.Source)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"ts":"`...)
	if !m.Time.IsZero() {
		b = m.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}
	b = append(b, `","action":`...)
	b = appendJSONString(b, d.Action)
	b = append(b, `,"has_reply":`...)
	b = strconv.AppendBool(b, m.Reply != "")
	b = append(b, '}')
	return b
}

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
