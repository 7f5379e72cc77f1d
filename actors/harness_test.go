package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/manifests"
)

// The test harness runs real parts: an in-process NATS server, a
// protoactor system, a Router on a stamping connection and capsule actors
// spawned from CapsuleProps, running the probe guest
// (testdata/guests/probe) compiled once per test binary.

const (
	probeGuest = "actors/testdata/guests/probe"
	seenTopic  = "probe.v1.seen"
	gateTopic  = "probe.v1.gate"
	waitFor    = 10 * time.Second
)

var (
	engineOnce sync.Once
	engine     *capsule.Engine
	engineErr  error
	modules    sync.Map // guest dir + pages -> *capsule.Module
)

func TestMain(m *testing.M) {
	code := m.Run()
	if engine != nil {
		_ = engine.Close(context.Background())
	}
	os.Exit(code)
}

// compile builds (once) and compiles (once per memory size) the guest at
// dir.
func compile(t *testing.T, dir string, pages uint32) *capsule.Module {
	t.Helper()
	key := fmt.Sprintf("%s@%d", dir, pages)
	if m, ok := modules.Load(key); ok {
		return m.(*capsule.Module)
	}
	engineOnce.Do(func() { engine, engineErr = capsule.NewEngine(capsule.EngineConfig{Logger: zerolog.Nop()}) })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	_, wasm := capsuletest.Build(t, dir)
	mod, err := engine.Compile(context.Background(), wasm, pages)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := modules.LoadOrStore(key, mod)
	return m.(*capsule.Module)
}

// binding is one interceptor of a probe capsule.
type binding struct {
	topic    string
	action   string // "probe" when empty
	priority int
}

// probeSpec describes a probe capsule: its id (also its tag), bindings,
// mode (see the guest), whether every call holds on the gate, and extra
// manifest TOML ([limits], [supervision]).
type probeSpec struct {
	name     string
	bindings []binding
	mode     string
	hold     bool
	extra    string
	// tag overrides the tag (default: name), to tell two actors of one
	// capsule id apart.
	tag string
}

func (s probeSpec) manifest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = %q\nversion = \"1.0.0\"\n\n[[component]]\nid = %q\nfile = \"probe.wasm\"\n\n", s.name, s.name)
	fmt.Fprintf(&b, "[publish]\n%q = { wit = \"opaque\" }\n\n[subscribe]\n%q = { wit = \"opaque\" }\n", seenTopic, gateTopic)
	for _, bd := range s.bindings {
		action := bd.action
		if action == "" {
			action = "probe"
		}
		fmt.Fprintf(&b, "%q = { wit = \"opaque\", handler = %q, priority = %d }\n", bd.topic, action, bd.priority)
	}
	b.WriteString("\n" + s.extra + "\n")
	return b.String()
}

// harness is one node's worth of actors machinery on a private NATS
// server.
type harness struct {
	t      *testing.T
	srv    *bus.Server
	tr     *Transport
	client *bus.Conn // an outside client (no stamper: claims)
	system *actor.ActorSystem
	router *Router
	parent *actor.PID
	events *eventLog
	seen   *bustest.Recorder

	mu   sync.Mutex
	pids []*actor.PID
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := bustest.RunServer(t)
	h := &harness{
		t:      t,
		srv:    srv,
		tr:     NewTransport(bustest.Conn(t, srv, bus.WithStamper(bustest.Stamper(t, "n1")))),
		client: bustest.Conn(t, srv),
		system: actor.NewActorSystem(actor.WithLoggerFactory(SlogBridge(zerolog.Nop()))),
		events: &eventLog{more: make(chan struct{}, 1)},
	}
	h.router = NewRouter(h.tr, h.system.Root, zerolog.Nop())
	h.seen = bustest.Record(t, h.client, seenTopic)
	h.parent = h.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &parentActor{log: h.events} }))
	// Registered after the connections: runs before they close.
	t.Cleanup(func() {
		h.mu.Lock()
		pids := h.pids
		h.mu.Unlock()
		for _, pid := range pids {
			_ = h.system.Root.StopFuture(pid).Wait()
		}
		_ = h.system.Root.StopFuture(h.parent).Wait()
		h.router.Close()
		h.system.Shutdown()
	})
	return h
}

// spawn starts a probe capsule actor under the parent and waits until it
// is ready (and so routed).
func (h *harness) spawn(s probeSpec) *actor.PID {
	h.t.Helper()
	tag := s.tag
	if tag == "" {
		tag = s.name
	}
	return h.spawnGuest(probeGuest, s.manifest(), map[string]string{"tag": tag, "mode": s.mode, "hold": fmt.Sprint(s.hold)})
}

// spawnGuest starts an actor for the guest at dir (relative to the repo
// root) with the manifest text and env, and waits until it is ready.
func (h *harness) spawnGuest(dir, manifest string, env map[string]string) *actor.PID {
	h.t.Helper()
	m, _, err := manifests.Parse("Capsule.toml", []byte(manifest))
	if err != nil {
		h.t.Fatalf("manifest: %v\n%s", err, manifest)
	}
	cfg := CapsuleConfig{
		Manifest:  m,
		Module:    compile(h.t, dir, m.Limits.MemoryPages),
		Transport: h.tr,
		Router:    h.router,
		Logger:    zerolog.Nop(),
		Owner:     "default",
		Env:       env,
	}
	from := h.events.len()
	res, err := h.system.Root.RequestFuture(h.parent, &spawnChild{props: CapsuleProps(cfg)}, waitFor).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	pid := res.(*actor.PID)
	h.mu.Lock()
	h.pids = append(h.pids, pid)
	h.mu.Unlock()
	h.waitReady(from, m.ID())
	return pid
}

// waitReady waits for a CapsuleReady of capsule id among the events from
// index from on.
func (h *harness) waitReady(from int, id string) {
	h.t.Helper()
	h.events.waitFor(h.t, from, "ready of "+id, func(e any) bool {
		r, ok := e.(*CapsuleReady)
		return ok && r.ID == id
	})
}

// stop stops pid, waits until it is gone and until the server has
// processed its unsubscriptions (as Node.StopCapsule does).
func (h *harness) stop(pid *actor.PID) {
	h.t.Helper()
	if err := h.system.Root.StopFuture(pid).Wait(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.tr.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// request sends a request for topic from principal "alice" and returns the
// reply.
func (h *harness) request(topic, payload string) *nats.Msg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := h.client.Request(ctx, &bus.Message{Topic: topic, Payload: []byte(payload), Principal: "alice"})
	if err != nil {
		h.t.Fatalf("request %s: %v", topic, err)
	}
	return resp
}

// noResponders asserts that nobody serves topic.
func (h *harness) noResponders(topic string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := h.client.Request(ctx, &bus.Message{Topic: topic, Payload: []byte(`{"trail":[]}`)})
	if err == nil || !strings.Contains(err.Error(), "no responders") {
		h.t.Fatalf("request %s: %v, want no responders", topic, err)
	}
}

// inbox collects every reply sent to one reply subject.
type inbox struct {
	subject string
	ch      chan *nats.Msg
}

func (h *harness) inbox() *inbox {
	h.t.Helper()
	in := &inbox{subject: nats.NewInbox(), ch: make(chan *nats.Msg, 1024)}
	sub, err := h.client.NATS().ChanSubscribe(in.subject, in.ch)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := h.client.NATS().Flush(); err != nil {
		h.t.Fatal(err)
	}
	return in
}

// send publishes a message for topic whose replies go to in.
func (h *harness) send(topic, payload string, in *inbox) {
	h.t.Helper()
	if err := h.client.Publish(&bus.Message{Topic: topic, Payload: []byte(payload), Principal: "alice", Reply: in.subject}); err != nil {
		h.t.Fatal(err)
	}
}

// settle returns once the actors, in chain order, have handled everything
// sent to them so far and everything they published (replies, probe.v1.seen)
// has reached the client: it asks each actor for its status in turn (an
// actor's mailbox is FIFO, and a level's completion sends the next level's
// Invokes before the actor answers), then sends a marker through the
// Transport's connection to seen and to each inbox and waits for it (one
// connection's messages arrive in order). It returns the replies that
// arrived before the markers.
//
// The router must already have dispatched the messages of interest (wait
// for their first level's announcements first): settle does not wait for
// NATS to deliver to the router.
func (h *harness) settle(pids []*actor.PID, inboxes ...*inbox) []*nats.Msg {
	h.t.Helper()
	for _, pid := range pids {
		if _, err := h.system.Root.RequestFuture(pid, &Status{}, waitFor).Result(); err != nil {
			h.t.Fatalf("status of %s: %v", pid.Id, err)
		}
	}
	marker := fmt.Sprintf(`{"tag":"marker-%d"}`, time.Now().UnixNano())
	if err := h.tr.Conn().Publish(&bus.Message{Topic: seenTopic, Payload: []byte(marker)}); err != nil {
		h.t.Fatal(err)
	}
	for _, in := range inboxes {
		if err := h.tr.Conn().Reply(in.subject, &bus.Message{Topic: "marker", Payload: []byte(marker)}); err != nil {
			h.t.Fatal(err)
		}
	}
	h.seen.WaitFor(h.t, waitFor, "marker", func(m bus.Message) bool { return string(m.Payload) == marker })
	var got []*nats.Msg
	for _, in := range inboxes {
		deadline := time.After(waitFor)
	drain:
		for {
			select {
			case m := <-in.ch:
				if string(m.Data) == marker {
					break drain
				}
				got = append(got, m)
			case <-deadline:
				h.t.Fatal("marker never reached the inbox")
			}
		}
	}
	return got
}

// seenBy counts the probe.v1.seen announcements of tag.
func (h *harness) seenBy(tag string) int {
	n := 0
	for _, m := range h.seen.Snapshot() {
		var s struct {
			Tag string `json:"tag"`
		}
		if json.Unmarshal(m.Payload, &s) == nil && s.Tag == tag {
			n++
		}
	}
	return n
}

// waitSeen waits until tag announced n calls.
func (h *harness) waitSeen(tag string, n int) {
	h.t.Helper()
	h.seen.WaitFor(h.t, waitFor, fmt.Sprintf("%d calls of %s", n, tag), func(bus.Message) bool { return h.seenBy(tag) >= n })
}

// gate releases every probe call holding on the gate.
func (h *harness) gate() {
	h.t.Helper()
	if err := h.client.Publish(&bus.Message{Topic: gateTopic, Payload: []byte(`{}`)}); err != nil {
		h.t.Fatal(err)
	}
}

// replyOf decodes a reply: its body and its Astrid-Error header.
func replyOf(m *nats.Msg) (body, errHeader string) {
	return string(m.Data), m.Header.Get(bus.HeaderError)
}

// parentActor stands in for the supervisor: it spawns capsule actors (so
// they have a parent to report to) and records what they report.
type parentActor struct{ log *eventLog }

type spawnChild struct{ props *actor.Props }

func (p *parentActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *spawnChild:
		ctx.Respond(ctx.Spawn(m.props))
	case *CapsuleStarted, *CapsuleReady, *CapsuleFailed:
		p.log.add(m)
	}
}

// eventLog is what the parent received, in order.
type eventLog struct {
	mu   sync.Mutex
	all  []any
	more chan struct{}
}

func (l *eventLog) add(e any) {
	l.mu.Lock()
	l.all = append(l.all, e)
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// waitFor waits for an event from index from on that satisfies ok.
func (l *eventLog) waitFor(t *testing.T, from int, what string, ok func(any) bool) any {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		all := append([]any(nil), l.all...)
		l.mu.Unlock()
		for _, e := range all[from:] {
			if ok(e) {
				return e
			}
		}
		select {
		case <-l.more:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; got %d events", what, len(all))
			return nil
		}
	}
}
