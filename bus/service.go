package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Control-plane topics: every node answers astrid.v1.ctl.<verb>.<node id>
// and astrid.v1.ctl.<verb>.all.
const (
	// ControlPrefix is the topic prefix of the control API.
	ControlPrefix = "astrid.v1.ctl"
	// ControlAll is the target every node answers.
	ControlAll = "all"
)

// ControlTopic returns the control topic of verb for target (a node id or
// [ControlAll]): "astrid.v1.ctl.<verb>.<target>". Like every topic it
// travels under the connection's subject prefix.
func ControlTopic(verb, target string) string {
	return ControlPrefix + "." + verb + "." + target
}

// ServiceConfig describes a NATS micro service (nats.go/micro): what
// `nats micro ls` and `nats micro info` show.
type ServiceConfig struct {
	// Name is the service name ([A-Za-z0-9_-]+); every instance shares it.
	Name string
	// Version is the service's semantic version.
	Version string
	// Description is free text.
	Description string
	// Metadata annotates this instance (for example its node id).
	Metadata map[string]string
}

// ServiceHandler answers one request on an endpoint: topic is the request's
// topic (the subject without the connection's prefix), data its body and
// headers its NATS headers (first value of each). A nil error sends the
// returned bytes as the reply. An error is sent as a micro error reply
// (headers Nats-Service-Error-Code and Nats-Service-Error): a
// *ServiceError keeps its code, description and data; any other error
// becomes code "500" with the error text.
type ServiceHandler func(topic string, data []byte, headers map[string]string) ([]byte, error)

// ServiceError is a micro error reply: an HTTP-like Code ("400", "404",
// "500"...), a Description and an optional body (Data).
type ServiceError struct {
	Code        string
	Description string
	Data        []byte
}

// Error implements error.
func (e *ServiceError) Error() string {
	return "bus: service error " + e.Code + ": " + e.Description
}

// Service is one instance of a NATS micro service on a connection: it
// answers PING, INFO and STATS on $SRV.* (`nats micro ls`) and the
// endpoints added with AddEndpoint. Endpoints have no queue group: every
// instance subscribed to an endpoint's subject answers it, so a request to
// a subject many instances share gathers one reply from each.
//
// # Concurrency
//
// Goroutine-safe. Each endpoint's handler runs on that endpoint's own
// subscription goroutine, one request at a time; different endpoints run
// concurrently.
type Service struct {
	conn *Conn
	svc  micro.Service
}

// NewService starts a micro service instance on c.
func NewService(c *Conn, cfg ServiceConfig) (*Service, error) {
	svc, err := micro.AddService(c.nc, micro.Config{
		Name: cfg.Name, Version: cfg.Version, Description: cfg.Description,
		Metadata: maps.Clone(cfg.Metadata), QueueGroupDisabled: true,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: service %s: %w", cfg.Name, err)
	}
	return &Service{conn: c, svc: svc}, nil
}

// ID returns the instance id micro generated (as `nats micro ls` shows it).
func (s *Service) ID() string { return s.svc.Info().ID }

// AddEndpoint answers requests on topic (mapped to its subject by the
// connection's prefix) with h. name labels the endpoint in `nats micro
// info` and its stats.
func (s *Service) AddEndpoint(name, topic string, h ServiceHandler) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	subjects := s.conn.subjects
	err := s.svc.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) {
		hdr := map[string]string{}
		for k, v := range req.Headers() {
			if len(v) > 0 {
				hdr[k] = v[0]
			}
		}
		out, herr := h(subjects.Topic(req.Subject()), req.Data(), hdr)
		if herr == nil {
			_ = req.Respond(out)
			return
		}
		se := &ServiceError{Code: "500", Description: herr.Error()}
		errors.As(herr, &se)
		// micro refuses an empty code or description.
		code, desc := se.Code, se.Description
		if code == "" {
			code = "500"
		}
		if desc == "" {
			desc = "error"
		}
		_ = req.Error(code, oneLine(desc), se.Data)
	}), micro.WithEndpointSubject(subjects.Subject(topic)))
	if err != nil {
		return fmt.Errorf("bus: endpoint %s on %s: %w", name, topic, err)
	}
	return nil
}

// Stop unsubscribes every endpoint, letting requests already received be
// answered (nats.go drains the subscriptions), and removes the instance
// from discovery. When it returns the server has processed the
// unsubscriptions (unless the connection is closed): no new request
// reaches the instance.
func (s *Service) Stop() error {
	if err := s.svc.Stop(); err != nil {
		return fmt.Errorf("bus: stop service: %w", err)
	}
	if err := s.conn.nc.FlushTimeout(2 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("bus: stop service: %w", err)
	}
	return nil
}

// oneLine keeps a header value on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// ServiceReply is one reply to a service request: its body, and Err when
// it is a micro error reply.
type ServiceReply struct {
	Data []byte
	Err  *ServiceError
}

func serviceReply(m *nats.Msg) ServiceReply {
	r := ServiceReply{Data: m.Data}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		r.Err = &ServiceError{Code: code, Description: m.Header.Get(micro.ErrorHeader), Data: m.Data}
	}
	return r
}

// GatherOptions bound a Gather besides its context.
type GatherOptions struct {
	// Done, when set, is called after each reply with every reply so far;
	// Gather returns as soon as it reports true.
	Done func(replies []ServiceReply) bool
	// Quiet, when positive, ends the gather once this long has passed
	// after the latest reply (and at least one reply arrived).
	Quiet time.Duration
}

// Gather publishes data on topic with a fresh reply inbox and collects the
// replies (one per responder) until opts.Done says enough, opts.Quiet
// passes without a new reply, or ctx ends (without a deadline on ctx it
// waits at most DefaultRequestTimeout). It returns the replies gathered,
// in arrival order. It fails with ErrNoResponders when nobody subscribes
// to the topic, and with ErrTimeout when ctx ends before any reply.
// Micro error replies are replies (ServiceReply.Err), not errors.
func (c *Conn) Gather(ctx context.Context, topic string, data []byte, opts GatherOptions) ([]ServiceReply, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	inbox := c.nc.NewInbox()
	ch := make(chan *nats.Msg)
	done := make(chan struct{})
	defer close(done)
	sub, err := c.nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case ch <- m:
		case <-done:
		}
	})
	if err != nil {
		return nil, c.wrap("gather", topic, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, c.wrap("gather", topic, err)
	}
	if err := c.nc.PublishMsg(&nats.Msg{Subject: c.subjects.Subject(topic), Reply: inbox, Data: data}); err != nil {
		return nil, c.wrap("gather", topic, err)
	}
	var replies []ServiceReply
	var quiet <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				if len(replies) == 0 {
					return nil, c.wrap("gather", topic, nats.ErrNoResponders)
				}
				continue
			}
			replies = append(replies, serviceReply(m))
			if opts.Done != nil && opts.Done(replies) {
				return replies, nil
			}
			if opts.Quiet > 0 {
				if timer == nil {
					timer = time.NewTimer(opts.Quiet)
				} else {
					timer.Reset(opts.Quiet)
				}
				quiet = timer.C
			}
		case <-quiet:
			return replies, nil
		case <-ctx.Done():
			if len(replies) == 0 {
				return nil, c.wrap("gather", topic, ctx.Err())
			}
			return replies, nil
		}
	}
}

// RequestService sends data to a service endpoint on topic and returns the
// first reply. It fails with ErrNoResponders or ErrTimeout like Request.
func (c *Conn) RequestService(ctx context.Context, topic string, data []byte) (ServiceReply, error) {
	replies, err := c.Gather(ctx, topic, data, GatherOptions{Done: func([]ServiceReply) bool { return true }})
	if err != nil {
		return ServiceReply{}, err
	}
	return replies[0], nil
}
