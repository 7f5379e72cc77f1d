package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
)

// Transport is the node's bus endpoint for capsules: it implements
// hoststate.Transport over a *bus.Conn (which stamps and signs every
// envelope) and carries the router's subscriptions and replies.
//
// # Concurrency
//
// Goroutine-safe (it only calls *bus.Conn, which is).
type Transport struct {
	conn *bus.Conn
}

// NewTransport wraps conn. conn must have a stamper (bus.WithStamper) so
// capsule publishes carry verifiable envelopes.
func NewTransport(conn *bus.Conn) *Transport { return &Transport{conn: conn} }

// Conn returns the underlying connection.
func (t *Transport) Conn() *bus.Conn { return t.conn }

// Publish implements hoststate.Transport.
func (t *Transport) Publish(m *bus.Message) error { return t.conn.Publish(m) }

// Reply implements hoststate.Transport.
func (t *Transport) Reply(subject string, m *bus.Message) error { return t.conn.Reply(subject, m) }

// Subscribe implements hoststate.Transport: pattern uses the route
// (subtree) grammar.
func (t *Transport) Subscribe(pattern string, deliver func(*bus.Message)) (func(), error) {
	return t.conn.SubscribeMessages(t.conn.Subjects().Route(pattern), deliver)
}

// Flush waits until the server has processed everything sent so far
// (subscriptions included).
func (t *Transport) Flush() error { return t.conn.NATS().Flush() }

// SubscribeStrict subscribes with the strict interceptor grammar.
func (t *Transport) SubscribeStrict(pattern string, deliver func(*bus.Message)) (func(), error) {
	return t.conn.SubscribeMessages(t.conn.Subjects().Strict(pattern), deliver)
}

// QueueSubscribeStrict subscribes with the strict interceptor grammar in
// the NATS queue group queue: each message reaches one member of the
// group across the whole cluster. As with bus.Conn.QueueSubscribeMessages,
// the message passed to deliver is valid only until it returns.
func (t *Transport) QueueSubscribeStrict(pattern, queue string, deliver func(*bus.Message)) (func(), error) {
	return t.conn.QueueSubscribeMessages(t.conn.Subjects().Strict(pattern), queue, deliver)
}

// Respond answers orig's requester with data, or with a typed error when
// errCode is not empty. The reply carries orig's principal.
func (t *Transport) Respond(orig *bus.Message, data []byte, errCode, detail string) {
	m := &bus.Message{Topic: orig.Topic, Payload: data, Principal: orig.Principal,
		Attribution: orig.Attribution, Origin: orig.Origin}
	// A failed reply leaves the requester to its own timeout: there is
	// nobody else to tell.
	if errCode != "" {
		_ = t.conn.ReplyError(orig.Reply, m, errCode, detail)
		return
	}
	_ = t.conn.Reply(orig.Reply, m)
}

// SlogBridge returns a protoactor logger factory writing to log at warn
// and above (protoactor logs every lifecycle step at info).
func SlogBridge(log zerolog.Logger) func(*actor.ActorSystem) *slog.Logger {
	return func(*actor.ActorSystem) *slog.Logger {
		l := log.With().Str("component", "protoactor").Logger()
		if l.GetLevel() < zerolog.WarnLevel {
			l = l.Level(zerolog.WarnLevel)
		}
		return slog.New(zerolog.NewSlogHandler(l))
	}
}
