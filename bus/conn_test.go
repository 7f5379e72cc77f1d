package bus_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// recv waits for one message on ch with a deadline.
func recv(t *testing.T, ch <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

func TestConnPublishSubscribe(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	subjects := bus.Subjects{Prefix: "astrid.t"}
	kernel := bustest.Conn(t, s, bus.WithStamper(newStamper(t)), bus.WithSubjects(subjects))
	outside := bustest.Conn(t, s, bus.WithSubjects(subjects)) // no stamper: an outside client

	ch := make(chan *nats.Msg, 4)
	sub, err := kernel.Subscribe(subjects.Route("counter.v1.*"), func(m *nats.Msg) { ch <- m })
	if err != nil {
		t.Fatal(err)
	}
	if msgs, bytes, err := sub.PendingLimits(); err != nil || msgs != -1 || bytes != -1 {
		t.Errorf("pending limits = %d, %d, %v; want unlimited", msgs, bytes, err)
	}
	if err := kernel.NATS().Flush(); err != nil {
		t.Fatal(err)
	}

	// Stamped by the kernel connection: verified on the way in.
	in := bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{}`), Principal: "alice",
		Attribution: bus.Verified, Origin: bus.OriginLocal, Source: "sess-1"}
	if err := kernel.Publish(&in); err != nil {
		t.Fatal(err)
	}
	m := recv(t, ch)
	if m.Subject != "astrid.t.counter.v1.increment" {
		t.Errorf("subject = %q", m.Subject)
	}
	d := kernel.Decode(m)
	if d.Topic != "counter.v1.increment" || d.Principal != "alice" || d.Attribution != bus.Verified ||
		d.Source != "sess-1" || d.Seq != in.Seq || d.Node != "node-1" {
		t.Errorf("kernel message decoded as %+v", d)
	}

	// The outside connection claims verified; it arrives claimed.
	forgedIn := bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{}`), Principal: "mallory",
		Attribution: bus.Verified, Header: nats.Header{"Astrid-Env": {"v2 verified - 1 0 local node-1 AAAA"}}}
	if err := outside.Publish(&forgedIn); err != nil {
		t.Fatal(err)
	}
	assertOutside(t, kernel.Decode(recv(t, ch)), "mallory")

	// Raw forged headers through PublishMsg fare no better.
	raw := forged()
	raw.Subject = subjects.Subject(raw.Subject)
	if err := outside.PublishMsg(raw); err != nil {
		t.Fatal(err)
	}
	assertOutside(t, kernel.Decode(recv(t, ch)), "alice")

	// Invalid topics are refused before anything is sent.
	var te *bus.TopicError
	if err := kernel.Publish(&bus.Message{Topic: "counter.v1.*"}); !errors.As(err, &te) {
		t.Errorf("publish on a wildcard: err = %v", err)
	}
}

func TestConnRequestReply(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	client := bustest.Conn(t, s, bus.WithStamper(newStamper(t)))
	server := bustest.Conn(t, s, bus.WithStamper(newStamper(t)))

	_, err := server.Subscribe("echo.v1.request", func(m *nats.Msg) {
		req := server.Decode(m)
		out := bus.Message{Topic: req.Topic, Payload: req.Payload, Principal: req.Principal, Attribution: req.Attribution}
		if err := server.Reply(req.Reply, &out); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.NATS().Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.Request(ctx, &bus.Message{Topic: "echo.v1.request", Payload: []byte(`{"hi":1}`), Principal: "bob", Attribution: bus.Claimed})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Data) != `{"hi":1}` {
		t.Errorf("reply = %s", resp.Data)
	}
	if d := client.Decode(resp); d.Attribution != bus.Claimed || d.Principal != "bob" || d.Origin != bus.OriginSystem || d.Seq == 0 {
		t.Errorf("reply decoded as %+v; want a stamped claimed reply", d)
	}

	// Nobody listens.
	_, err = client.Request(ctx, &bus.Message{Topic: "nobody.v1.here", Payload: []byte(`{}`)})
	if !errors.Is(err, bus.ErrNoResponders) || !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("no responders: err = %v", err)
	}

	// Somebody listens but never answers.
	if _, err := server.Subscribe("slow.v1.request", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := server.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	_, err = client.Request(short, &bus.Message{Topic: "slow.v1.request", Payload: []byte(`{}`)})
	if !errors.Is(err, bus.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: err = %v", err)
	}
}

// TestConnSubscribeGuard proves that a capsule subscribed to everything
// never sees JetStream/KV traffic or other clients' reply inboxes, while a
// raw NATS subscription to ">" does.
func TestConnSubscribeGuard(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	c := bustest.Conn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := bus.OpenKV(ctx, c, bus.KVConfig{})
	if err != nil {
		t.Fatal(err)
	}

	guarded := make(chan *nats.Msg, 64)
	rawSubjects := make(chan string, 256)
	if _, err := c.Subscribe(bus.RouteToNATS("*"), func(m *nats.Msg) { guarded <- m }); err != nil {
		t.Fatal(err)
	}
	watcher := bustest.Conn(t, s)
	if _, err := watcher.NATS().Subscribe(">", func(m *nats.Msg) { rawSubjects <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe("svc.v1.ask", func(m *nats.Msg) { _ = m.Respond([]byte(`"secret-answer"`)) }); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*bus.Conn{c, watcher} {
		if err := conn.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := kv.Put(ctx, "alice:capsule:x", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, &bus.Message{Topic: "svc.v1.ask", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(&bus.Message{Topic: "done.v1.now", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	var got []string
	for {
		m := recv(t, guarded)
		got = append(got, m.Subject)
		if m.Subject == "done.v1.now" {
			break
		}
	}
	for _, subj := range got {
		if strings.HasPrefix(subj, "$") || strings.HasPrefix(subj, "_INBOX.") {
			t.Errorf("guarded subscription delivered %q", subj)
		}
	}
	if strings.Join(got, ",") != "svc.v1.ask,done.v1.now" {
		t.Errorf("guarded subscription got %v", got)
	}
	// The raw subscription saw the KV write: the guard is what keeps it out.
	sawKV := false
	for len(rawSubjects) > 0 {
		if strings.HasPrefix(<-rawSubjects, "$KV.") {
			sawKV = true
		}
	}
	if !sawKV {
		t.Error("raw '>' subscription saw no $KV traffic; the test proves nothing")
	}
}

func TestConnDrainAndClose(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	c, err := bus.ConnectInProcess(s, "drain", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *nats.Msg, 100)
	if _, err := c.Subscribe("a.b", func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	pub := bustest.Conn(t, s)
	for range 100 {
		if err := pub.Publish(&bus.Message{Topic: "a.b", Payload: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.NATS().Flush(); err != nil { // the server has routed all 100 to c
		t.Fatal(err)
	}
	if err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	if !c.NATS().IsClosed() {
		t.Fatal("Drain returned before the connection closed")
	}
	if len(got) != 100 {
		t.Errorf("drain delivered %d of 100 messages", len(got))
	}
	if err := c.Drain(); err != nil {
		t.Errorf("second Drain: %v", err)
	}
	c.Close() // idempotent
	if err := c.Publish(&bus.Message{Topic: "a.b"}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("publish after close: err = %v", err)
	}
}

func TestConnectTCP(t *testing.T) {
	t.Parallel()
	s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:-1", NoLog: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	url := s.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":-1") {
		t.Fatalf("ClientURL = %q", url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, url, "tcp-test", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ch := make(chan *nats.Msg, 1)
	if _, err := c.Subscribe("x.y", func(m *nats.Msg) { ch <- m }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(&bus.Message{Topic: "x.y", Payload: []byte(`2`), Principal: "dave"}); err != nil {
		t.Fatal(err)
	}
	assertOutside(t, c.Decode(recv(t, ch)), "dave")

	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := bus.Connect(cancelled, url, "x", zerolog.Nop()); !errors.Is(err, context.Canceled) {
		t.Errorf("connect with a cancelled ctx: err = %v", err)
	}
	if _, err := bus.Connect(ctx, url, "x", zerolog.Nop(), bus.WithSubjects(bus.Subjects{Prefix: "a..b"})); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Errorf("connect with a bad prefix: err = %v", err)
	}
	s.Shutdown()
	if _, err := bus.Connect(ctx, url, "x", zerolog.Nop()); err == nil {
		t.Error("connect to a stopped server succeeded")
	}
}

// TestConnPublishHammer publishes stamped messages from several goroutines
// through one connection (pooled messages, atomic sequence) and checks
// that every message arrives intact, verified, with a unique sequence.
func TestConnPublishHammer(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	pub := bustest.Conn(t, s, bus.WithStamper(newStamper(t)))
	sub := bustest.Conn(t, s, bus.WithStamper(newStamper(t)))
	const workers, each = 8, 200
	ch := make(chan *nats.Msg, workers*each)
	if _, err := sub.Subscribe("hammer.>", func(m *nats.Msg) { ch <- m }); err != nil {
		t.Fatal(err)
	}
	if err := sub.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			principal := "p" + strconv.Itoa(w)
			for i := range each {
				m := bus.Message{
					Topic:       "hammer.v1." + principal,
					Payload:     []byte(strconv.Itoa(i)),
					Principal:   principal,
					Attribution: bus.Verified,
					Header:      nats.Header{"X-Worker": {principal}},
				}
				if err := pub.Publish(&m); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[uint64]bool)
	next := make(map[string]int)
	for range workers * each {
		d := sub.Decode(recv(t, ch))
		if d.Attribution != bus.Verified || d.Topic != "hammer.v1."+d.Principal || d.Header.Get("X-Worker") != d.Principal {
			t.Fatalf("mixed-up message %+v", d)
		}
		if seen[d.Seq] {
			t.Fatalf("sequence %d seen twice", d.Seq)
		}
		seen[d.Seq] = true
		// NATS keeps per-publisher order on a subject.
		if want := strconv.Itoa(next[d.Principal]); string(d.Payload) != want {
			t.Fatalf("%s: payload %s, want %s", d.Principal, d.Payload, want)
		}
		next[d.Principal]++
	}
}
