package bus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/nats-io/nats.go"
)

func TestSubscribeMessagesAndReplyError(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	subjects := bus.Subjects{Prefix: "astrid.t"}
	node := bustest.Conn(t, s, bus.WithStamper(newStamper(t)), bus.WithSubjects(subjects))
	client := bustest.Conn(t, s, bus.WithSubjects(subjects))

	got := make(chan *bus.Message, 1)
	cancel, err := node.SubscribeMessages(subjects.Route("svc.v1.*"), func(m *bus.Message) {
		got <- m
		if err := node.ReplyError(m.Reply, m, "denied", "not in the [publish] table"); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelCtx()
	resp, err := client.Request(ctx, &bus.Message{Topic: "svc.v1.call", Payload: []byte(`{}`), Principal: "erin"})
	if err != nil {
		t.Fatal(err)
	}
	m := <-got
	if m.Topic != "svc.v1.call" || m.Principal != "erin" || m.Attribution != bus.Claimed || m.Origin != bus.OriginExternal {
		t.Errorf("delivered %+v", m)
	}
	if h := resp.Header.Get(bus.HeaderError); h != "denied: not in the [publish] table" {
		t.Errorf("%s = %q", bus.HeaderError, h)
	}
	var body bus.ErrorReply
	if err := json.Unmarshal(resp.Data, &body); err != nil || body.Error != "denied" || body.Detail == "" {
		t.Errorf("body %s: %+v, %v", resp.Data, body, err)
	}

	// After cancel nothing more is delivered; cancel is idempotent.
	cancel()
	cancel()
	if err := node.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(&bus.Message{Topic: "svc.v1.call", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// A second subscriber proves the message was sent after the cancel.
	probe := make(chan *nats.Msg, 1)
	if _, err := node.Subscribe(subjects.Subject("svc.v1.after"), func(m *nats.Msg) { probe <- m }); err != nil {
		t.Fatal(err)
	}
	if err := node.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(&bus.Message{Topic: "svc.v1.after", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	recv(t, probe)
	select {
	case m := <-got:
		t.Errorf("delivered after cancel: %+v", m)
	default:
	}
}

// QueueSubscribeMessages decodes every delivery into one reused Message:
// each delivery is complete and correct while deliver runs (stamped
// principal, topic, payload), which is all the contract promises.
func TestQueueSubscribeMessagesReusesTheMessage(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	node := bustest.Conn(t, s, bus.WithStamper(newStamper(t)))
	type seen struct {
		ptr                       *bus.Message
		topic, payload, principal string
		attr                      bus.Attribution
	}
	got := make(chan seen, 3)
	cancel, err := node.QueueSubscribeMessages("q.v1.*", "workers", func(m *bus.Message) {
		got <- seen{m, m.Topic, string(m.Payload), m.Principal, m.Attribution}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if err := node.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"ann", "bob", "cy"} {
		m := &bus.Message{Topic: "q.v1." + p, Payload: []byte(`{"i":` + string(rune('0'+i)) + `}`), Principal: p, Attribution: bus.Verified}
		if err := node.Publish(m); err != nil {
			t.Fatal(err)
		}
	}
	var first *bus.Message
	for i, p := range []string{"ann", "bob", "cy"} {
		select {
		case s := <-got:
			if s.topic != "q.v1."+p || s.principal != p || s.attr != bus.Verified || s.payload != `{"i":`+string(rune('0'+i))+`}` {
				t.Errorf("delivery %d = %+v", i, s)
			}
			if first == nil {
				first = s.ptr
			} else if s.ptr != first {
				t.Errorf("delivery %d got a new Message; the subscription reuses one", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d did not arrive", i)
		}
	}
}
