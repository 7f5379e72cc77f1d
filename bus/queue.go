package bus

import "github.com/nats-io/nats.go"

// QueueSubscribeMessages is SubscribeMessages in the NATS queue group
// queue: of all the subscriptions to subject in that group, on every
// connection of the cluster, each message goes to exactly one, picked at
// random by the publisher's server among its own members and the other
// servers with members. The nodes of a cluster serving the same handler
// share its load this way.
//
// Unlike SubscribeMessages, deliver gets a Message that is valid only until
// it returns: the subscription decodes every delivery into the same value
// (nats.go runs one subscription's callbacks one at a time), so the hot
// path allocates no Message. Copy *m to keep it.
func (c *Conn) QueueSubscribeMessages(subject, queue string, deliver func(m *Message)) (cancel func(), err error) {
	msg := new(Message)
	sub, err := c.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		*msg = c.Decode(m)
		deliver(msg)
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
