package bus

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// SubscribeMessages subscribes to a NATS subject (built with Subjects.Route
// or Subjects.Strict) and hands every message, decoded with the
// connection's trust rule, to deliver. deliver runs on the subscription's
// callback goroutine, one message at a time; it must not block for long.
// The returned cancel function unsubscribes; it is idempotent.
func (c *Conn) SubscribeMessages(subject string, deliver func(*Message)) (cancel func(), err error) {
	sub, err := c.Subscribe(subject, func(m *nats.Msg) {
		msg := c.Decode(m)
		deliver(&msg)
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// ErrorReply is the JSON body of a typed error reply; the same code is in
// the Astrid-Error header as "<code>: <detail>".
type ErrorReply struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

// ReplyError answers the request whose reply subject is subject with a
// typed error instead of letting the requester time out. code is a short
// kebab-case name (denied, capsule-failed, quarantined, backpressure...).
func (c *Conn) ReplyError(subject string, m *Message, code, detail string) error {
	body, _ := json.Marshal(ErrorReply{Error: code, Detail: detail})
	msg := &nats.Msg{}
	out := *m
	out.Payload = body
	out.Reply = ""
	c.encode(msg, subject, &out)
	v := code
	if detail != "" {
		v += ": " + detail
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(HeaderError, v)
	if err := c.nc.PublishMsg(msg); err != nil {
		return c.wrap("reply", subject, err)
	}
	return nil
}
