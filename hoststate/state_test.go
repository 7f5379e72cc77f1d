package hoststate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/astrid-go/astrid/hoststate"
)

// transport is actors.Transport, line for line: hoststate.Transport over a
// real *bus.Conn. (Importing actors here would be an import cycle.)
type transport struct{ conn *bus.Conn }

func (t transport) Publish(m *bus.Message) error               { return t.conn.Publish(m) }
func (t transport) Reply(subject string, m *bus.Message) error { return t.conn.Reply(subject, m) }
func (t transport) Subscribe(pattern string, deliver func(*bus.Message)) (func(), error) {
	return t.conn.SubscribeMessages(t.conn.Subjects().Route(pattern), deliver)
}

// env is a real NATS server with JetStream, a stamping node connection and
// a KV bucket.
type env struct {
	srv  *bus.Server
	conn *bus.Conn
	kv   *bus.KV
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := bustest.RunServer(t)
	c := bustest.Conn(t, s, bus.WithStamper(bustest.Stamper(t, "node-1")))
	kv, err := bus.OpenKV(context.Background(), c, bus.KVConfig{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: s, conn: c, kv: kv}
}

func (e *env) state(t *testing.T, cfg hoststate.Config) *hoststate.State {
	t.Helper()
	if cfg.CapsuleID == "" {
		cfg.CapsuleID = "cap"
	}
	st := hoststate.New(context.Background(), cfg, transport{e.conn}, e.kv, hoststate.NewInbox(64),
		zerolog.New(zerolog.NewTestWriter(t)))
	t.Cleanup(func() { st.CloseSubscriptions(); st.Cancel(errors.New("test over")) })
	return st
}

// collect subscribes a plain NATS client to subject and returns the
// channel of decoded messages.
func (e *env) collect(t *testing.T, subject string) <-chan bus.Message {
	t.Helper()
	ch := make(chan bus.Message, 64)
	sub, err := e.conn.Subscribe(subject, func(m *nats.Msg) { ch <- e.conn.Decode(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.conn.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func recvMsg(t *testing.T, ch <-chan bus.Message) bus.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return bus.Message{}
	}
}

func wantCode(t *testing.T, err error, want hoststate.Code) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("err = nil, want %s", want)
	}
	if got := hoststate.CodeOf(err); got != want {
		t.Fatalf("err = %v (code %s), want %s", err, got, want)
	}
	if !errors.Is(err, &hoststate.Error{Code: want}) {
		t.Fatalf("errors.Is(%v, %s sentinel) = false", err, want)
	}
}

func msg(principal, topic string) *bus.Message {
	return &bus.Message{Principal: principal, Topic: topic, Payload: []byte(`{}`), Attribution: bus.Claimed}
}

func TestInvocationContext(t *testing.T) {
	e := newEnv(t)
	st := e.state(t, hoststate.Config{CapsuleID: "notes", Owner: "owner"})
	ownerNS, aliceNS := "owner:capsule:notes", "alice:capsule:notes"
	check := func(step, principal, ns string, caller bool) {
		t.Helper()
		if got := st.EffectivePrincipal(); got != principal {
			t.Fatalf("%s: EffectivePrincipal = %q, want %q", step, got, principal)
		}
		if got := st.EffectiveNamespace(); got != ns {
			t.Fatalf("%s: EffectiveNamespace = %q, want %q", step, got, ns)
		}
		if (st.Caller() != nil) != caller {
			t.Fatalf("%s: Caller() = %v, want set=%v", step, st.Caller(), caller)
		}
	}
	check("idle", "owner", ownerNS, false)

	st.BeginInvocation(msg("alice", "t.a"))
	check("other principal", "alice", aliceNS, true)
	st.EndInvocation()
	check("after EndInvocation", "owner", ownerNS, false)

	st.BeginInvocation(msg("owner", "t.a"))
	check("same principal", "owner", ownerNS, true)
	st.EndInvocation()

	// A system message (no principal) and a malformed principal run as the
	// owner: they never reach a namespace.
	st.BeginInvocation(&bus.Message{Topic: "t", Attribution: bus.System})
	check("system", "owner", ownerNS, true)
	st.EndInvocation()
	st.BeginInvocation(msg("evil:capsule:other", "t"))
	check("invalid principal", "owner", ownerNS, true)
	st.EndInvocation()

	// recv path: install, fast path for the same principal, clear.
	m1, m2 := msg("alice", "t.one"), msg("alice", "t.two")
	st.InstallRecvContext(m1)
	check("recv alice", "alice", aliceNS, true)
	st.InstallRecvContext(m2)
	check("recv alice again", "alice", aliceNS, true)
	if st.Caller() != m2 {
		t.Fatal("fast path did not replace the caller message")
	}
	st.InstallRecvContext(msg("owner", "t"))
	check("recv owner", "owner", ownerNS, true)
	st.InstallRecvContext(msg("bob", "t"))
	check("recv bob", "bob", "bob:capsule:notes", true)
	st.ClearRecvContext()
	check("cleared", "owner", ownerNS, false)
}

func TestPollRecvInstallAndClearContext(t *testing.T) {
	e := newEnv(t)
	st := e.state(t, hoststate.Config{CapsuleID: "c", Owner: "owner", Subscribe: []string{"in.*"}})
	h, err := st.Subscribe("in.*")
	wantCode(t, err, 0)
	in := st.Inbox()

	in.Push(&hoststate.Delivery{Handle: h, Msg: msg("alice", "in.x")})
	d, err := st.Poll(h)
	if err != nil || d == nil {
		t.Fatalf("Poll = %v, %v", d, err)
	}
	if st.EffectivePrincipal() != "alice" || st.EffectiveNamespace() != "alice:capsule:c" {
		t.Fatalf("poll did not install alice's context: %s %s", st.EffectivePrincipal(), st.EffectiveNamespace())
	}
	if d, err := st.Poll(h); d != nil || err != nil {
		t.Fatalf("empty Poll = %v, %v", d, err)
	}
	if st.Caller() != nil || st.EffectiveNamespace() != "owner:capsule:c" {
		t.Fatal("empty poll did not clear the context")
	}

	in.Push(&hoststate.Delivery{Handle: h, Msg: msg("bob", "in.y")})
	if _, err := st.Recv(context.Background(), 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if st.EffectivePrincipal() != "bob" {
		t.Fatal("recv did not install bob's context")
	}
	_, err = st.Recv(context.Background(), h, 10*time.Millisecond)
	wantCode(t, err, hoststate.CodeTimeout)
	if st.Caller() != nil || st.EffectivePrincipal() != "owner" {
		t.Fatal("recv timeout did not clear the context")
	}

	// Nested in an interceptor call the context is the interceptor's.
	st.BeginInvocation(msg("carol", "hook"))
	in.Push(&hoststate.Delivery{Handle: h, Msg: msg("dave", "in.z")})
	if _, err := st.Recv(context.Background(), h, time.Second); err != nil {
		t.Fatal(err)
	}
	if st.EffectivePrincipal() != "carol" {
		t.Fatalf("nested recv replaced the interceptor context with %s", st.EffectivePrincipal())
	}
	if d, _ := st.Poll(h); d != nil {
		t.Fatal("queue should be empty")
	}
	if st.EffectivePrincipal() != "carol" {
		t.Fatal("nested empty poll cleared the interceptor context")
	}
	st.EndInvocation()
	if st.Caller() != nil {
		t.Fatal("EndInvocation left a caller")
	}
}

func TestPublishChecks(t *testing.T) {
	e := newEnv(t)
	long := "a." + strings.Repeat("b", 300)
	tests := []struct {
		name    string
		acl     []string
		limit   int
		topic   string
		payload string
		want    hoststate.Code
	}{
		{"ok", []string{"out.*"}, 0, "out.x", `{"a":1}`, 0},
		{"topic too large wins over everything", nil, 0, long, `not json`, hoststate.CodeTooLarge},
		{"payload too large wins over ACL", nil, 0, "out.x", `"` + strings.Repeat("x", hoststate.MaxPayloadBytes) + `"`, hoststate.CodeTooLarge},
		{"invalid topic before ACL", nil, 0, "out..x", `{}`, hoststate.CodeInvalidInput},
		{"wildcard topic", []string{"*"}, 0, "out.*", `{}`, hoststate.CodeInvalidInput},
		{"nine segments", []string{"*"}, 0, "a.b.c.d.e.f.g.h.i", `{}`, hoststate.CodeInvalidInput},
		{"empty ACL denies all", nil, 0, "out.x", `{}`, hoststate.CodeCapabilityDenied},
		{"outside ACL", []string{"out.*"}, 0, "other.x", `{}`, hoststate.CodeCapabilityDenied},
		{"ACL before JSON", nil, 0, "out.x", `not json`, hoststate.CodeCapabilityDenied},
		{"not JSON", []string{"out.*"}, 0, "out.x", `{"a":`, hoststate.CodeInvalidInput},
		{"empty payload is not JSON", []string{"out.*"}, 0, "out.x", ``, hoststate.CodeInvalidInput},
		{"rate limited", []string{"out.*"}, 8, "out.x", `{"a":1}`, hoststate.CodeRateLimited},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := e.state(t, hoststate.Config{Publish: tc.acl, IPCBytesPerSecond: tc.limit})
			wantCode(t, st.Publish(tc.topic, []byte(tc.payload)), tc.want)
		})
	}
}

func TestPublishStampsAndChargesOnlyAccepted(t *testing.T) {
	e := newEnv(t)
	got := e.collect(t, "out.>")
	// Budget for exactly two publishes of 5+2 bytes.
	st := e.state(t, hoststate.Config{Owner: "owner", Publish: []string{"out.*"}, IPCBytesPerSecond: 14})
	for range 5 {
		wantCode(t, st.Publish("out.x", []byte(`{`)), hoststate.CodeInvalidInput) // refused: not charged
	}
	wantCode(t, st.Publish("out.x", []byte(`{}`)), 0)
	st.BeginInvocation(&bus.Message{Topic: "in", Principal: "alice", Attribution: bus.Claimed, Origin: bus.OriginExternal})
	wantCode(t, st.Publish("out.y", []byte(`{}`)), 0) // alice has her own budget
	wantCode(t, st.Publish("out.y", []byte(`{}`)), 0)
	wantCode(t, st.Publish("out.y", []byte(`{}`)), hoststate.CodeRateLimited)
	st.EndInvocation()
	wantCode(t, st.Publish("out.x", []byte(`{}`)), 0)
	wantCode(t, st.Publish("out.x", []byte(`{}`)), hoststate.CodeRateLimited)

	m := recvMsg(t, got)
	if m.Topic != "out.x" || m.Principal != "owner" || m.Attribution != bus.Verified || m.Source != st.Session() || m.Seq == 0 {
		t.Fatalf("owner publish stamped %+v", m)
	}
	m = recvMsg(t, got)
	if m.Topic != "out.y" || m.Principal != "alice" || m.Attribution != bus.Claimed {
		t.Fatalf("publish for alice stamped %+v", m)
	}
}

// TestPublishSequence: the [publish] ACL is checked on every publish of
// one State (a denied topic never becomes allowed by what was published
// before), and the envelope of each publish is its own, though State
// reuses the message it hands to the transport.
func TestPublishSequence(t *testing.T) {
	e := newEnv(t)
	got := e.collect(t, "out.>")
	st := e.state(t, hoststate.Config{Owner: "owner", Publish: []string{"out.*"}})
	steps := []struct {
		topic  string
		caller *bus.Message
		want   hoststate.Code
	}{
		{"out.x", nil, 0},
		{"other.x", nil, hoststate.CodeCapabilityDenied},
		{"out.x", &bus.Message{Topic: "in", Principal: "alice", Attribution: bus.Claimed, Origin: bus.OriginExternal}, 0},
		{"other.x", nil, hoststate.CodeCapabilityDenied},
		{"other.x", nil, hoststate.CodeCapabilityDenied},
		{"out", nil, hoststate.CodeCapabilityDenied},
		{"out.y", nil, 0},
		{"out.x", nil, 0},
	}
	var want []bus.Message
	for i, step := range steps {
		if step.caller != nil {
			st.BeginInvocation(step.caller)
		}
		payload := []byte(fmt.Sprintf(`{"step":%d}`, i))
		if err := st.Publish(step.topic, payload); hoststate.CodeOf(err) != step.want && !(step.want == 0 && err == nil) {
			t.Fatalf("step %d: Publish(%q) = %v, want %s", i, step.topic, err, step.want)
		}
		if step.caller != nil {
			st.EndInvocation()
		}
		if step.want == 0 {
			w := bus.Message{Topic: step.topic, Payload: payload, Principal: "owner", Attribution: bus.Verified, Origin: bus.OriginLocal}
			if step.caller != nil {
				w.Principal, w.Attribution, w.Origin = "alice", bus.Claimed, bus.OriginExternal
			}
			want = append(want, w)
		}
	}
	var lastSeq uint64
	for _, w := range want {
		m := recvMsg(t, got)
		if m.Topic != w.Topic || string(m.Payload) != string(w.Payload) || m.Principal != w.Principal ||
			m.Attribution != w.Attribution || m.Origin != w.Origin || m.Source != st.Session() || m.Seq <= lastSeq {
			t.Fatalf("got %+v, want %+v", m, w)
		}
		lastSeq = m.Seq
	}
}

func TestReply(t *testing.T) {
	e := newEnv(t)
	st := e.state(t, hoststate.Config{})
	wantCode(t, st.Reply([]byte(`{}`)), hoststate.CodeNotFound) // nothing being handled
	st.BeginInvocation(msg("alice", "ask"))
	wantCode(t, st.Reply([]byte(`{}`)), hoststate.CodeNotFound) // no reply subject
	st.EndInvocation()

	inbox := nats.NewInbox()
	got := e.collect(t, inbox)
	m := msg("alice", "ask")
	m.Reply = inbox
	st.BeginInvocation(m)
	wantCode(t, st.Reply([]byte(`nope`)), hoststate.CodeInvalidInput)
	if st.Replied() {
		t.Fatal("Replied after a refused reply")
	}
	wantCode(t, st.Reply([]byte(`{"ok":true}`)), 0) // no ACL needed
	if !st.Replied() {
		t.Fatal("Replied = false")
	}
	st.EndInvocation()
	r := recvMsg(t, got)
	if string(r.Payload) != `{"ok":true}` || r.Principal != "alice" {
		t.Fatalf("reply = %+v", r)
	}
}

func TestSubscribe(t *testing.T) {
	e := newEnv(t)
	t.Run("ACL", func(t *testing.T) {
		st := e.state(t, hoststate.Config{Subscribe: []string{"a.*", "x.y"}})
		for _, tc := range []struct {
			pattern string
			want    hoststate.Code
		}{
			{"a.b", 0}, {"a.*", 0}, {"a.b.*", 0}, {"x.y", 0},
			{"x.*", hoststate.CodeCapabilityDenied}, {"b.c", hoststate.CodeCapabilityDenied},
			{"a..b", hoststate.CodeInvalidInput}, {"a.>", hoststate.CodeInvalidInput},
			{strings.Repeat("a.", 200) + "b", hoststate.CodeTooLarge},
		} {
			_, err := st.Subscribe(tc.pattern)
			if hoststate.CodeOf(err) != tc.want && !(tc.want == 0 && err == nil) {
				t.Errorf("Subscribe(%q) = %v, want %s", tc.pattern, err, tc.want)
			}
		}
		none := e.state(t, hoststate.Config{})
		_, err := none.Subscribe("a.b")
		wantCode(t, err, hoststate.CodeCapabilityDenied)
	})
	t.Run("quota counts bindings", func(t *testing.T) {
		bindings := []hoststate.Binding{{HandleID: 1, Action: "x", Topic: "h.x"}, {HandleID: 2, Action: "y", Topic: "h.y"}}
		st := e.state(t, hoststate.Config{Subscribe: []string{"s.*"}, Bindings: bindings})
		var handles []uint64
		for i := range hoststate.MaxSubscriptions - len(bindings) {
			h, err := st.Subscribe("s.x")
			if err != nil {
				t.Fatalf("subscribe %d: %v", i, err)
			}
			if h <= 2 {
				t.Fatalf("handle %d collides with a binding", h)
			}
			handles = append(handles, h)
		}
		if st.SubscriptionCount() != hoststate.MaxSubscriptions {
			t.Fatalf("SubscriptionCount = %d", st.SubscriptionCount())
		}
		_, err := st.Subscribe("s.x")
		wantCode(t, err, hoststate.CodeQuota)
		wantCode(t, st.Unsubscribe(handles[0]), 0)
		_, err = st.Subscribe("s.x")
		wantCode(t, err, 0)
	})
	t.Run("unsubscribe and closed handles", func(t *testing.T) {
		st := e.state(t, hoststate.Config{Subscribe: []string{"s.*"},
			Bindings: []hoststate.Binding{{HandleID: 1, Action: "x", Topic: "h.x"}}})
		h, err := st.Subscribe("s.x")
		wantCode(t, err, 0)
		wantCode(t, st.Unsubscribe(999), hoststate.CodeNotFound)
		wantCode(t, st.Unsubscribe(1), hoststate.CodeInvalidInput)
		_, err = st.Poll(1) // bindings can be polled
		wantCode(t, err, 0)
		wantCode(t, st.Unsubscribe(h), 0)
		wantCode(t, st.Unsubscribe(h), hoststate.CodeClosed)
		_, err = st.Poll(h)
		wantCode(t, err, hoststate.CodeClosed)
		_, err = st.Recv(context.Background(), h, time.Millisecond)
		wantCode(t, err, hoststate.CodeClosed)
		_, err = st.Poll(999)
		wantCode(t, err, hoststate.CodeNotFound)
		if st.SubscriptionCount() != 1 {
			t.Fatalf("SubscriptionCount = %d, want 1 (the binding)", st.SubscriptionCount())
		}
	})
	t.Run("delivery through NATS", func(t *testing.T) {
		st := e.state(t, hoststate.Config{Subscribe: []string{"s.*"}})
		h, err := st.Subscribe("s.*")
		wantCode(t, err, 0)
		if err := e.conn.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
		out := bustest.Conn(t, e.srv) // an outside client
		if err := out.Publish(&bus.Message{Topic: "s.deep.er", Payload: []byte(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
		d, err := st.Recv(context.Background(), h, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d.Handle != h || d.Msg.Topic != "s.deep.er" || string(d.Msg.Payload) != `{"n":1}` {
			t.Fatalf("delivery = %+v", d)
		}
		wantCode(t, st.Unsubscribe(h), 0)
		if err := out.Publish(&bus.Message{Topic: "s.x", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if err := out.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
		if err := e.conn.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
		if n := st.Inbox().Len(); n != 0 {
			t.Fatalf("%d messages queued after unsubscribe", n)
		}
	})
}

func TestBlockingCallsEndOnCancel(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		call func(st *hoststate.State, ctx context.Context) error
	}{
		{"sleep", func(st *hoststate.State, ctx context.Context) error { return st.Sleep(ctx, time.Minute) }},
		{"recv", func(st *hoststate.State, ctx context.Context) error {
			_, err := st.Recv(ctx, 0, time.Minute)
			return err
		}},
	} {
		for _, how := range []string{"state", "call ctx", "foreign ctx"} {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				st := e.state(t, hoststate.Config{})
				ctx, cancel := context.WithCancel(st.Context())
				if how == "foreign ctx" {
					ctx, cancel = context.WithCancel(context.Background())
				}
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- tc.call(st, ctx) }()
				start := time.Now()
				if how == "state" || how == "foreign ctx" && tc.name == "sleep" {
					st.Cancel(errors.New("stop"))
				} else {
					cancel()
				}
				select {
				case err := <-done:
					wantCode(t, err, hoststate.CodeCancelled)
					if el := time.Since(start); el > 2*time.Second {
						t.Fatalf("took %v", el)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("blocking call did not end")
				}
			})
		}
	}
	st := e.state(t, hoststate.Config{Publish: []string{"*"}, Subscribe: []string{"*"}})
	st.Cancel(errors.New("stop"))
	wantCode(t, st.Publish("a.b", []byte(`{}`)), hoststate.CodeClosed)
	_, err := st.Subscribe("a.b")
	wantCode(t, err, hoststate.CodeClosed)
	wantCode(t, st.KVSet(nil, "k", nil), hoststate.CodeClosed)
	wantCode(t, st.Sleep(nil, 0), hoststate.CodeCancelled)
}

func TestKV(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := e.state(t, hoststate.Config{CapsuleID: "kvcap", Owner: "owner"})

	wantCode(t, st.KVSet(ctx, "k", []byte("owner-v")), 0)
	st.BeginInvocation(msg("alice", "t"))
	_, err := st.KVGet(ctx, "k")
	wantCode(t, err, hoststate.CodeNotFound) // alice's namespace is separate
	wantCode(t, st.KVSet(ctx, "k", []byte("alice-v")), 0)
	st.EndInvocation()

	for ns, want := range map[string]string{"owner:capsule:kvcap": "owner-v", "alice:capsule:kvcap": "alice-v"} {
		v, _, err := e.kv.Get(ctx, ns, "k")
		if err != nil || string(v) != want {
			t.Fatalf("store %s/k = %q, %v; want %q", ns, v, err, want)
		}
	}

	for _, k := range []string{"p/1", "p/2", "q"} {
		wantCode(t, st.KVSet(ctx, k, []byte(k)), 0)
	}
	keys, err := st.KVListKeys(ctx, "p/")
	wantCode(t, err, 0)
	if strings.Join(keys, ",") != "p/1,p/2" {
		t.Fatalf("keys = %v", keys)
	}
	wantCode(t, st.KVCAS(ctx, "q", []byte("wrong"), false, []byte("x")), hoststate.CodeCASMismatch)
	wantCode(t, st.KVCAS(ctx, "q", []byte("q"), false, []byte("x")), 0)
	wantCode(t, st.KVCAS(ctx, "q", nil, true, []byte("y")), hoststate.CodeCASMismatch)
	wantCode(t, st.KVCAS(ctx, "new", nil, true, []byte("y")), 0)
	n, err := st.KVClearPrefix(ctx, "p/")
	if err != nil || n != 2 {
		t.Fatalf("KVClearPrefix = %d, %v", n, err)
	}
	wantCode(t, st.KVDelete(ctx, "q"), 0)
	wantCode(t, st.KVDelete(ctx, "q"), 0) // idempotent
	_, err = st.KVGet(ctx, "q")
	wantCode(t, err, hoststate.CodeNotFound)

	for _, tc := range []struct {
		name string
		key  string
		val  int
		want hoststate.Code
	}{
		{"empty key", "", 0, hoststate.CodeInvalidInput},
		{"key 256", strings.Repeat("k", 256), 1, 0},
		{"key 257", strings.Repeat("k", 257), 1, hoststate.CodeTooLarge},
		{"NUL", "a\x00b", 1, hoststate.CodeInvalidInput},
		{"DEL", "a\x7fb", 1, hoststate.CodeInvalidInput},
		{"C1 control", "a\u0085b", 1, hoststate.CodeInvalidInput},
		{"invalid UTF-8", "a\xffb", 1, hoststate.CodeInvalidInput},
		{"unicode", "ключ ✓", 1, 0},
		{"value 1 MiB", "big", hoststate.MaxKVValueBytes, 0},
		{"value 1 MiB + 1", "big", hoststate.MaxKVValueBytes + 1, hoststate.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, st.KVSet(ctx, tc.key, make([]byte, tc.val)), tc.want)
		})
	}
}

func TestKVListLimit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := e.state(t, hoststate.Config{CapsuleID: "many"})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < hoststate.MaxKVListKeys+1; i += 8 {
				if _, err := e.kv.Put(ctx, "default:capsule:many", fmt.Sprintf("k%04d", i), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	_, err := st.KVListKeys(ctx, "")
	wantCode(t, err, hoststate.CodeTooLarge)
	keys, err := st.KVListKeys(ctx, "k0")
	if err != nil || len(keys) != 1000 {
		t.Fatalf("KVListKeys(k0) = %d keys, %v", len(keys), err)
	}
	wantCode(t, st.KVDelete(ctx, "k1024"), 0)
	keys, err = st.KVListKeys(ctx, "")
	if err != nil || len(keys) != hoststate.MaxKVListKeys {
		t.Fatalf("KVListKeys = %d keys, %v", len(keys), err)
	}
}

func TestSysCalls(t *testing.T) {
	e := newEnv(t)
	st := e.state(t, hoststate.Config{Env: map[string]string{"greeting": "hi"}, SecretKeys: []string{"token"}})
	if v, err := st.GetConfig("greeting"); err != nil || v != "hi" {
		t.Fatalf("GetConfig = %q, %v", v, err)
	}
	_, err := st.GetConfig("missing")
	wantCode(t, err, hoststate.CodeNotFound)
	_, err = st.GetConfig("token")
	wantCode(t, err, hoststate.CodeNotFound)

	for _, tc := range []struct {
		n    int
		want hoststate.Code
	}{{0, 0}, {4096, 0}, {4097, hoststate.CodeTooLarge}, {-1, hoststate.CodeInvalidInput}} {
		b, err := st.RandomBytes(tc.n)
		wantCode(t, err, tc.want)
		if tc.want == 0 && len(b) != tc.n {
			t.Fatalf("RandomBytes(%d) gave %d bytes", tc.n, len(b))
		}
	}
	if c := st.GetCaller(); c != (hoststate.CallerInfo{}) {
		t.Fatalf("GetCaller outside an invocation = %+v", c)
	}
	ts := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	st.BeginInvocation(&bus.Message{Topic: "t.x", Principal: "alice", Attribution: bus.Verified, Source: "src", Time: ts})
	c := st.GetCaller()
	st.EndInvocation()
	if c.Principal != "alice" || c.Attribution != "verified" || c.SourceID != "src" || c.Topic != "t.x" || c.TS == "" {
		t.Fatalf("GetCaller = %+v", c)
	}
	select {
	case <-st.Ready():
		t.Fatal("ready before SignalReady")
	default:
	}
	st.SignalReady()
	st.SignalReady()
	<-st.Ready()
}

type envelope struct {
	Handle      uint64          `json:"handle"`
	Topic       string          `json:"topic"`
	Payload     json.RawMessage `json:"payload"`
	Principal   string          `json:"principal"`
	Attribution string          `json:"attribution"`
	SourceID    string          `json:"source_id"`
	Seq         uint64          `json:"seq"`
	TS          string          `json:"ts"`
	Action      string          `json:"action"`
	HasReply    bool            `json:"has_reply"`
}

func TestEnvelopeJSON(t *testing.T) {
	ts := time.Date(2026, 12, 4, 20, 0, 0, 123456789, time.FixedZone("x", 3600))
	d := &hoststate.Delivery{Handle: 7, Action: "act", Msg: &bus.Message{
		Topic: "a.b", Payload: []byte(` {"x": [1, 2]} `), Principal: "alice", Attribution: bus.Verified,
		Source: "s-1", Seq: 42, Time: ts, Reply: "_INBOX.x",
	}}
	b := hoststate.EnvelopeJSON(d)
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := envelope{Handle: 7, Topic: "a.b", Payload: json.RawMessage(`{"x": [1, 2]}`), Principal: "alice",
		Attribution: "verified", SourceID: "s-1", Seq: 42, TS: "2026-12-04T19:00:00.123Z", Action: "act", HasReply: true}
	if string(e.Payload) != string(want.Payload) {
		t.Fatalf("payload %s, want %s", e.Payload, want.Payload)
	}
	e.Payload, want.Payload = nil, nil
	if fmt.Sprint(e) != fmt.Sprint(want) {
		t.Fatalf("envelope\n got %+v\nwant %+v", e, want)
	}
	// Non-JSON payloads travel as a string.
	d.Msg.Payload = []byte("plain \"text\"\n")
	if err := json.Unmarshal(hoststate.EnvelopeJSON(d), &e); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(e.Payload, &s); err != nil || s != "plain \"text\"\n" {
		t.Fatalf("payload %s", e.Payload)
	}
}

func FuzzEnvelopeJSON(f *testing.F) {
	f.Add([]byte("a.b"), []byte(`{"a":1}`), []byte("alice"), []byte("act"), uint64(1), int64(0))
	f.Add([]byte("\x00\"\\"), []byte("\xff\xfe"), []byte("\u2028"), []byte(""), uint64(0), int64(-1))
	f.Add([]byte("t"), []byte(` [1,"\u00e9"] `), []byte("\x7f"), []byte("\xc3"), ^uint64(0), int64(1)<<62)
	f.Fuzz(func(t *testing.T, topic, payload, principal, action []byte, seq uint64, nanos int64) {
		d := &hoststate.Delivery{Handle: seq ^ 5, Action: string(action), Msg: &bus.Message{
			Topic: string(topic), Payload: payload, Principal: string(principal), Source: string(action),
			Seq: seq, Attribution: bus.Attribution(seq % 4),
		}}
		if nanos != 0 {
			d.Msg.Time = time.Unix(0, nanos)
		}
		b := hoststate.EnvelopeJSON(d)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %q", b)
		}
		var e envelope
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if e.Handle != d.Handle || e.Seq != seq {
			t.Fatalf("numbers changed: %+v", e)
		}
		if json.Valid(payload) && len(payload) > 0 {
			var want, got bytes.Buffer
			if err := json.Compact(&want, payload); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&got, e.Payload); err != nil {
				t.Fatal(err)
			}
			if want.String() != got.String() {
				t.Fatalf("payload %q came back as %q", payload, e.Payload)
			}
		}
	})
}
