package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultRequestTimeout bounds Request when ctx has no deadline; it matches
// the default capsule call timeout.
const DefaultRequestTimeout = 30 * time.Second

// closeWait bounds how long Close waits for the client's closed callback.
const closeWait = 5 * time.Second

// ConnOption configures a Conn at Connect time.
type ConnOption func(*connConfig)

type connConfig struct {
	stamper  *Stamper
	subjects Subjects
	extra    []nats.Option
}

// WithStamper makes the connection publish as the kernel: every Publish,
// Request and Reply is stamped and signed by s. Without it the connection
// publishes as an outside client (EncodeClaimed).
func WithStamper(s *Stamper) ConnOption {
	return func(c *connConfig) { c.stamper = s }
}

// WithSubjects sets the topic-to-subject mapping (the deployment prefix).
func WithSubjects(s Subjects) ConnOption {
	return func(c *connConfig) { c.subjects = s }
}

// WithNATSOptions appends raw nats.go options (credentials, TLS) after the
// package's own, so they win.
func WithNATSOptions(opts ...nats.Option) ConnOption {
	return func(c *connConfig) { c.extra = append(c.extra, opts...) }
}

// Conn is a NATS client connection with its JetStream context.
//
// # Concurrency
//
// All methods are safe for concurrent use. Subscription callbacks run on
// nats.go's per-subscription goroutine, one message at a time.
type Conn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	log      zerolog.Logger
	stamper  *Stamper
	subjects Subjects
	closed   chan struct{}
	msgs     sync.Pool // *nats.Msg with a reusable header map
}

// ctxDialer dials with the Connect context while Connect runs, and with a
// plain timeout afterwards (reconnects must not die with that context).
type ctxDialer struct {
	ctx atomic.Pointer[context.Context]
	d   net.Dialer
}

func (d *ctxDialer) Dial(network, address string) (net.Conn, error) {
	ctx := context.Background()
	if p := d.ctx.Load(); p != nil {
		ctx = *p
	}
	return d.d.DialContext(ctx, network, address)
}

// Connect dials the NATS server or cluster at url (comma-separated URLs
// allowed) with the client name name. It reconnects forever after a
// disconnect, buffering publishes meanwhile. ctx bounds the initial
// connection only.
func Connect(ctx context.Context, url, name string, log zerolog.Logger, opts ...ConnOption) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", url, err)
	}
	d := &ctxDialer{d: net.Dialer{Timeout: 5 * time.Second}}
	d.ctx.Store(&ctx)
	c, err := connect(url, name, log, opts, nats.SetCustomDialer(d))
	d.ctx.Store(nil)
	return c, err
}

// ConnectInProcess connects to the embedded server s without a socket
// (nats.InProcessServer). Use it for the node's own connections.
func ConnectInProcess(s *Server, name string, log zerolog.Logger, opts ...ConnOption) (*Conn, error) {
	return connect("", name, log, opts, nats.InProcessServer(s.ns))
}

func connect(url, name string, log zerolog.Logger, opts []ConnOption, transport nats.Option) (*Conn, error) {
	var cfg connConfig
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.subjects.Validate(); err != nil {
		return nil, fmt.Errorf("bus: connect: prefix: %w", err)
	}
	c := &Conn{
		log:      log.With().Str("component", "bus").Str("conn", name).Logger(),
		stamper:  cfg.stamper,
		subjects: cfg.subjects,
		closed:   make(chan struct{}),
	}
	c.msgs.New = func() any { return &nats.Msg{} }
	var closeOnce sync.Once
	nopts := []nats.Option{
		transport,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			closeOnce.Do(func() { close(c.closed) })
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := c.log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats async error")
		}),
	}
	nopts = append(nopts, cfg.extra...)
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	c.nc, c.js = nc, js
	return c, nil
}

// NATS returns the underlying nats.go connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream returns the connection's JetStream context.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// Subjects returns the topic-to-subject mapping of the connection.
func (c *Conn) Subjects() Subjects { return c.subjects }

// Stamper returns the connection's stamper, or nil for an outside-client
// connection.
func (c *Conn) Stamper() *Stamper { return c.stamper }

// Close closes the connection at once, dropping pending messages, and
// waits (briefly) for nats.go to finish closing. It is idempotent. Do not
// call it from a subscription callback.
func (c *Conn) Close() {
	c.nc.Close()
	select {
	case <-c.closed:
	case <-time.After(closeWait):
	}
}

// Drain unsubscribes, lets every subscription process what it already
// received, flushes pending publishes, then closes; it waits until the
// connection is closed (nats.go bounds draining at 30 s). Do not call it
// from a subscription callback.
func (c *Conn) Drain() error {
	if c.nc.IsClosed() {
		return nil
	}
	if err := c.nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("bus: drain: %w", err)
	}
	<-c.closed
	return nil
}

// encode fills dst with m for subject, stamped when the connection has a
// stamper and as a claim otherwise.
func (c *Conn) encode(dst *nats.Msg, subject string, m *Message) {
	if c.stamper != nil {
		c.stamper.StampTo(dst, subject, m)
	} else {
		EncodeClaimed(dst, subject, m)
	}
}

func (c *Conn) putMsg(msg *nats.Msg) {
	// Drop references to caller data; keep the header map and the
	// envelope headers' value slices for reuse.
	msg.Data = nil
	dropForeign(msg.Header)
	c.msgs.Put(msg)
}

// Publish validates m.Topic (ValidateTopic), encodes m (stamped, or as a
// claim) and publishes it on the topic's subject. m.Seq, m.Time, m.Node
// and m.Origin are updated when the connection stamps.
func (c *Conn) Publish(m *Message) error {
	if err := ValidateTopic(m.Topic); err != nil {
		return err
	}
	msg := c.msgs.Get().(*nats.Msg)
	c.encode(msg, c.subjects.Subject(m.Topic), m)
	err := c.nc.PublishMsg(msg)
	c.putMsg(msg)
	if err != nil {
		return c.wrap("publish", m.Topic, err)
	}
	return nil
}

// PublishMsg publishes a raw NATS message as is: no validation, no
// stamping, no header stripping. Use it only for traffic the node itself
// built.
func (c *Conn) PublishMsg(msg *nats.Msg) error {
	if err := c.nc.PublishMsg(msg); err != nil {
		return c.wrap("publish", msg.Subject, err)
	}
	return nil
}

// Reply answers a request whose reply subject is subject, encoding m like
// Publish does (m.Topic is informational; the message goes to subject, which
// is not validated or prefixed, and m.Reply is ignored).
func (c *Conn) Reply(subject string, m *Message) error {
	msg := c.msgs.Get().(*nats.Msg)
	reply := m.Reply
	m.Reply = ""
	c.encode(msg, subject, m)
	m.Reply = reply
	err := c.nc.PublishMsg(msg)
	c.putMsg(msg)
	if err != nil {
		return c.wrap("reply", subject, err)
	}
	return nil
}

// Request publishes m (as Publish does, with a fresh reply inbox) and waits
// for one reply. Without a deadline on ctx it waits at most
// DefaultRequestTimeout. Errors match ErrNoResponders or ErrTimeout where
// applicable. The reply is returned raw; Decode it to read its envelope.
func (c *Conn) Request(ctx context.Context, m *Message) (*nats.Msg, error) {
	if err := ValidateTopic(m.Topic); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	msg := c.msgs.Get().(*nats.Msg)
	reply := m.Reply
	m.Reply = ""
	c.encode(msg, c.subjects.Subject(m.Topic), m)
	m.Reply = reply
	resp, err := c.nc.RequestMsgWithContext(ctx, msg)
	c.putMsg(msg)
	if err != nil {
		return nil, c.wrap("request", m.Topic, err)
	}
	return resp, nil
}

// wrap gives a nats error the package prefix and the matching sentinel.
func (c *Conn) wrap(op, what string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %s %s: %w", ErrNoResponders, op, what, err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s %s: %w", ErrTimeout, op, what, err)
	case errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("%w: %s %s: %w", ErrClosed, op, what, err)
	default:
		return fmt.Errorf("bus: %s %s: %w", op, what, err)
	}
}

// guard wraps cb for a subscription whose subject starts with a wildcard,
// which NATS would also match against JetStream API, KV and system
// subjects (`$...`) and other clients' request inboxes (`_INBOX...`);
// those messages are dropped so that a capsule subscribed to `*` never sees
// another principal's KV writes or replies.
func guard(subject string, cb nats.MsgHandler) nats.MsgHandler {
	if subject == "" || (subject[0] != '*' && subject[0] != '>') {
		return cb
	}
	return func(m *nats.Msg) {
		if isReservedSubject(m.Subject) {
			return
		}
		cb(m)
	}
}

// Subscribe subscribes to a NATS subject (build it with Subjects.Route or
// Subjects.Strict) with no pending limits: a slow callback queues rather
// than drops. A subject starting with a wildcard never delivers reserved
// subjects (`$...`, `_INBOX...`).
func (c *Conn) Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := c.nc.Subscribe(subject, guard(subject, cb))
	if err != nil {
		return nil, c.wrap("subscribe", subject, err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, c.wrap("subscribe", subject, err)
	}
	return sub, nil
}

// QueueSubscribe is Subscribe in queue group queue: each message goes to
// one member of the group.
func (c *Conn) QueueSubscribe(subject, queue string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := c.nc.QueueSubscribe(subject, queue, guard(subject, cb))
	if err != nil {
		return nil, c.wrap("subscribe", subject, err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, c.wrap("subscribe", subject, err)
	}
	return sub, nil
}

// Decode is the package-level Decode with the connection's subjects and
// the key of its stamper (none for an outside-client connection, so every
// message decodes as Claimed).
func (c *Conn) Decode(m *nats.Msg) Message {
	var key []byte
	if c.stamper != nil {
		key = c.stamper.key
	}
	return Decode(m, c.subjects, key)
}
