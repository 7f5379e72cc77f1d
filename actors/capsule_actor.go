package actors

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/manifests"
)

// CapsuleConfig is everything a CapsuleActor needs to run one capsule.
type CapsuleConfig struct {
	Manifest  *manifests.Manifest
	Module    *capsule.Module
	Transport *Transport
	Router    *Router
	Logger    zerolog.Logger
	// Owner is the principal the capsule is loaded for ("default").
	Owner string
	// Env is the resolved non-secret configuration.
	Env map[string]string
	// Tenancy holds the node's per-principal services.
	Tenancy Tenancy
	// Generation numbers the versions of one capsule on this node (0 for
	// the first); a hot upgrade runs generation N+1 beside N until the
	// switch.
	Generation int
	// dispatcher is the actor's pinned mailbox goroutine (CapsuleProps),
	// stopped when the actor stops.
	dispatcher *pinnedDispatcher
	// mailbox is the actor's intake (CapsuleProps), kept across
	// protoactor restarts of the actor value so nothing queued is lost.
	mailbox *Mailbox
	// watch counts the actor's protoactor messages (CapsuleProps).
	watch *mailboxWatch
	// Unrouted actors do not bind their interceptors at start; the
	// supervisor binds them when it switches traffic to them (hot upgrade).
	Unrouted bool
}

// Tenancy is what keeps principals apart in a shared capsule: the
// quota-aware KV store, secrets, stored config, quota profiles and
// per-principal log files. Any field may be nil.
type Tenancy struct {
	KV       hoststate.KVStore
	Secrets  hoststate.SecretStore
	Config   hoststate.ConfigStore
	Profiles hoststate.Profiles
	Logs     hoststate.LogSink
	OnQuota  func(hoststate.QuotaEvent)
	// OnDeadLetter counts messages parked on the dead-letter topic.
	OnDeadLetter func(capsule string)
}

// CapsuleActor runs one capsule: it owns the capsule's current wazero
// instance and HostState exclusively (the single-thread store rule) and
// the inbox that feeds its recv path across incarnations.
//
// Handler calls run on the actor's own goroutine, one message at a time. A
// run-loop capsule's run export runs on a goroutine the actor starts and
// waits for; while it runs the actor never enters the instance, and
// interceptor messages for it go through the inbox instead, tagged with
// their action.
//
// # Concurrency
//
// All fields are owned by the actor (protoactor runs Receive one message
// at a time). The run goroutine touches only the instance and State it was
// started with, and reports back with messages.
type CapsuleActor struct {
	cfg      CapsuleConfig
	id       string
	log      zerolog.Logger
	inbox    *hoststate.Inbox
	bindings []hoststate.Binding

	system *actor.ActorSystem
	self   *actor.PID
	parent *actor.PID

	ctx    context.Context
	cancel context.CancelFunc

	inc     int
	inst    *capsule.Instance
	state   *hoststate.State
	runDone chan struct{}
	status  string
	// quarantined holds the reason while the capsule is quarantined.
	quarantined string
	// paused holds intake while a dependency restarts; stash keeps what
	// arrived meanwhile, in order.
	paused bool
	stash  []*Invoke
	// crashes counts crashes per message fingerprint (poison detection).
	crashes map[uint64]int
	// mb is the actor's intake of Invokes (see Mailbox).
	mb *Mailbox
	// cur is the Invoke whose guest call is in progress, and curPayload
	// the payload it was given; a batched call (capsule.Batch) moves them
	// on to each queued message it takes. batching is set while invoke
	// runs from a drain, the only time queued messages may join a call.
	cur        *Invoke
	curPayload []byte
	batching   bool
	budget     int
	batched    uint64
	idle       *time.Timer // bounds a wait for the next Invoke (batchFeed)
	// successor is the next generation after a hot upgrade retired this
	// one; Invokes that still reach this actor are forwarded to it.
	successor *actor.PID
	// routed is set while the router's routes for the capsule lead to this
	// actor: only then does stopping it remove them (a retired or never
	// switched-to generation must not take its sibling's routes along).
	routed bool
}

// retireLinger is how long a retired generation keeps forwarding Invokes
// that were routed to it before the switch, before it stops.
const retireLinger = 2 * time.Second

var _ actor.Actor = (*CapsuleActor)(nil)

// NewCapsuleActor returns the producer of a CapsuleActor for cfg.
func NewCapsuleActor(cfg CapsuleConfig) actor.Producer {
	return func() actor.Actor {
		m := cfg.Manifest
		a := &CapsuleActor{
			cfg:     cfg,
			id:      m.ID(),
			log:     cfg.Logger.With().Str("capsule", m.ID()).Str("capsule_version", m.Package.VersionRaw).Logger(),
			inbox:   hoststate.NewInbox(m.Limits.MailboxSize),
			status:  "starting",
			crashes: map[uint64]int{},
			mb:      cfg.mailbox,
		}
		if a.mb == nil {
			a.mb = NewMailbox(m.Limits.MailboxSize, m.Limits.Overflow)
		}
		for i, ic := range m.Interceptors() {
			a.bindings = append(a.bindings, hoststate.Binding{
				HandleID: uint64(i + 1), Action: ic.Action, Topic: ic.Topic, Priority: ic.Priority,
			})
		}
		return a
	}
}

// Receive implements actor.Actor.
func (a *CapsuleActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.system = ctx.ActorSystem()
		a.self = ctx.Self()
		a.parent = ctx.Parent()
		a.ctx, a.cancel = context.WithCancel(context.Background())
		// Bind first: messages that arrive before the instance exists wait
		// in the mailbox, and readiness then implies routability.
		if a.cfg.Router != nil && !a.cfg.Unrouted {
			a.cfg.Router.Add(a.id, a.self, a.bindings, a.mb)
			a.routed = true
		}
		a.incarnate(ctx)
		// A value restarted by protoactor finds what its predecessor left
		// queued (and maybe no drain on its way): look at once.
		a.mb.rearm()
		ctx.Send(a.self, a.mb.wake)
	case *drain:
		a.drain(ctx, m.mb)
	case *Invoke:
		m.mb.release(m.Msg.Principal)
		a.invoke(ctx, m)
	case *runEnded:
		a.runEnded(ctx, m)
	case *readySignalled:
		if m.inst == a.inst && a.inst != nil {
			a.status = "ready"
			ctx.Send(a.parent, &CapsuleReady{ID: a.id, Incarnation: a.inc, Generation: a.cfg.Generation})
		}
	case *Restart:
		a.quarantined = ""
		a.endIncarnation()
		a.incarnate(ctx)
	case *Pause:
		a.paused = true
		a.inbox.Pause()
	case *Resume:
		a.paused = false
		a.inbox.Resume()
		stash := a.stash
		a.stash = nil
		for _, m := range stash {
			a.invoke(ctx, m)
		}
	case *Quarantine:
		a.quarantine(m.Reason)
	case *Bind:
		a.cfg.Router.Add(a.id, a.self, a.bindings, a.mb)
		a.routed = true
		if m.Inbox != nil {
			for _, d := range m.Inbox.Drain() {
				a.inbox.Push(d)
			}
		}
	case *Retire:
		// Hand over to the successor: stop the run loop, give it what the
		// run loop had not taken yet and let it bind the routes; Invokes
		// already queued here are still handled here, later ones are
		// forwarded, so each message is handled by exactly one generation.
		a.successor = m.Successor
		a.routed = false
		a.cancelRun()
		a.inbox.Close()
		ctx.Send(m.Successor, &Bind{Inbox: a.inbox})
		self, root := a.self, a.system.Root
		time.AfterFunc(retireLinger, func() { root.Poison(self) })
	case *Status:
		ctx.Respond(&StatusReport{
			ID: a.id, Version: a.cfg.Manifest.Package.VersionRaw, State: a.status,
			Incarnation: a.inc, RunLoop: a.cfg.Module.Exports().Run, Queued: a.inbox.Len() + a.mb.Len(),
			Batched: a.batched,
		})
	case *actor.Restarting:
		// protoactor replaces this actor value after a panic in our own
		// code, and the new value starts (and rebinds the routes) on
		// Started: end this value's incarnation, or its instance, run loop
		// and subscriptions would outlive it.
		a.release()
	case *actor.Stopping:
		a.stop()
		a.refuseQueued()
	case *actor.Stopped:
		if a.cfg.dispatcher != nil {
			a.cfg.dispatcher.Stop()
		}
	}
}

func (a *CapsuleActor) stateConfig() hoststate.Config {
	m := a.cfg.Manifest
	cfg := hoststate.Config{
		CapsuleID: a.id,
		Version:   m.Package.VersionRaw,
		Owner:     a.cfg.Owner,
		Env:       a.cfg.Env,
		Bindings:  a.bindings,
		Secrets:   a.cfg.Tenancy.Secrets,
		Config:    a.cfg.Tenancy.Config,
		Profiles:  a.cfg.Tenancy.Profiles,
		Logs:      a.cfg.Tenancy.Logs,
		OnQuota:   a.cfg.Tenancy.OnQuota,
	}
	for _, e := range m.Env {
		if e.Type == "secret" {
			cfg.SecretKeys = append(cfg.SecretKeys, e.Name)
		}
	}
	for _, p := range m.Publish {
		cfg.Publish = append(cfg.Publish, p.Topic)
	}
	for _, s := range m.Subscribe {
		cfg.Subscribe = append(cfg.Subscribe, s.Topic)
	}
	return cfg
}

// incarnate starts a new incarnation: a fresh HostState and instance.
func (a *CapsuleActor) incarnate(ctx actor.Context) {
	a.endIncarnation() // never leak the previous State's subscriptions
	a.inc++
	inc := a.inc
	log := a.log.With().Int("incarnation", inc).Logger()
	st := hoststate.New(a.ctx, a.stateConfig(), a.cfg.Transport, a.cfg.Tenancy.KV, a.inbox, log)
	inst, err := a.cfg.Module.Instantiate(st, capsule.InstanceConfig{CallTimeout: a.cfg.Manifest.Limits.CallTimeout})
	if err != nil {
		st.Cancel(err)
		a.inst, a.state = nil, nil
		a.status = "failed"
		ctx.Send(a.parent, &CapsuleFailed{Generation: a.cfg.Generation, ID: a.id, Incarnation: inc, Err: err, At: time.Now()})
		return
	}
	a.inst, a.state = inst, st
	a.status = "started"
	ctx.Send(a.parent, &CapsuleStarted{ID: a.id, Incarnation: inc, Generation: a.cfg.Generation})
	if !inst.HasRun() {
		a.status = "ready"
		ctx.Send(a.parent, &CapsuleReady{ID: a.id, Incarnation: inc, Generation: a.cfg.Generation})
		return
	}
	a.inbox.Reopen()
	done := make(chan struct{})
	a.runDone = done
	root, self := a.system.Root, a.self
	go func() {
		err := inst.Run()
		close(done)
		root.Send(self, &runEnded{incarnation: inc, inst: inst, err: err})
	}()
	go func() {
		select {
		case <-st.Ready():
			root.Send(self, &readySignalled{incarnation: inc, inst: inst})
		case <-done:
		}
	}()
}

// invoke runs one step of a dispatch chain.
func (a *CapsuleActor) invoke(ctx actor.Context, m *Invoke) {
	if a.successor != nil {
		m.mb = nil
		ctx.Send(a.successor, m)
		return
	}
	if a.paused {
		a.stash = append(a.stash, m)
		return
	}
	payload, modified := m.payload()
	if a.quarantined != "" {
		m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Errored, Code: "quarantined",
			Data: []byte("capsule " + a.id + " is quarantined: " + a.quarantined)}, false)
		return
	}
	if a.cfg.Module.Exports().Run {
		if a.cfg.Manifest.Limits.Overflow != "drop_oldest" && a.inbox.Full() {
			m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Errored, Code: "backpressure",
				Data: []byte("capsule " + a.id + " inbox is full")}, false)
			return
		}
		// Never enter an instance whose run export is executing: deliver
		// through recv, tagged with the action. The run loop answers a
		// requester itself with ipc_reply.
		msg := m.Msg
		if modified {
			cp := *msg
			cp.Payload = payload
			msg = &cp
		}
		a.inbox.Push(&hoststate.Delivery{Handle: m.Handle, Action: m.Action, Msg: msg})
		m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Continue}, true)
		return
	}
	if a.inst == nil || a.inst.Dead() {
		a.incarnate(ctx)
	}
	if a.inst == nil {
		m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Errored, Code: "capsule-failed",
			Data: []byte("capsule " + a.id + " is not running")}, false)
		return
	}
	sup := a.cfg.Manifest.Supervision
	if crashes, poison := a.poison(m.Msg, payload); poison {
		// A known poison message: park it without touching the capsule.
		a.deadLetter(m.Msg, payload, "poison message: crashed the capsule "+itoa(crashes)+" times", crashes)
		m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Errored, Code: "dead-lettered",
			Data: []byte("message dead-lettered: it crashed capsule " + a.id + " repeatedly")}, false)
		return
	}
	for attempt := 0; ; attempt++ {
		st := a.state
		st.BeginInvocation(m.Msg)
		a.cur, a.curPayload = m, payload
		var res capsule.Result
		var err error
		if attempt == 0 && a.batching {
			// Messages queued behind this one may join the call; what
			// follows concerns the one in progress when it ended, if any.
			res, err = a.inst.InvokeBatch(m.Action, payload, (*batchFeed)(a))
			m, payload = a.cur, a.curPayload
			if m == nil {
				// Every message was completed inside the call. A failure
				// now concerns no message: a stop while the call waited
				// for one only ends the instance (the next message gets a
				// new one); anything else is a crash like any other.
				var te *capsule.TrapError
				if err != nil && !(errors.As(err, &te) && te.Kind == capsule.FailCancelled) {
					a.failed(ctx, err, nil, false)
					a.incarnate(ctx)
				}
				return
			}
		} else {
			res, err = a.inst.Invoke(m.Action, payload)
		}
		if err == nil {
			a.completeCurrent(res)
			return
		}
		a.cur, a.curPayload = nil, nil
		replied := st.Replied()
		st.EndInvocation()
		fp := fingerprint(m.Msg, payload)
		a.crashes[fp]++
		if len(a.crashes) > 4096 {
			clear(a.crashes) // bounded memory; poison detection restarts
			a.crashes[fp] = 1
		}
		// Only the first crash of a message counts toward the restart
		// intensity: a poison message must not burn the budget.
		a.failed(ctx, err, m.Msg, a.crashes[fp] > 1)
		// The next message (or the retry) gets a fresh instance at once.
		a.incarnate(ctx)
		if replied || a.inst == nil || a.quarantined != "" {
			m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Errored, Code: "capsule-failed",
				Data: []byte(failureText(a.id, err))}, replied)
			return
		}
		if sup.OnCrash == "retry" && attempt == 0 && a.crashes[fp] < sup.PoisonThreshold {
			a.log.Info().Str("topic", m.Msg.Topic).Msg("retrying the message that crashed the capsule")
			continue
		}
		a.deadLetter(m.Msg, payload, failureText(a.id, err), a.crashes[fp])
		m.chain.complete(m.level, m.index, capsule.Result{Kind: capsule.Errored, Code: "capsule-failed",
			Data: []byte(failureText(a.id, err) + "; message dead-lettered")}, false)
		return
	}
}

// drainBudget bounds the Invokes one drain message handles before the
// actor lets its other messages (stop, restart, status) in.
const drainBudget = 256

// drain takes the Invokes queued in mb, in order, up to drainBudget; if
// more remain it sends itself the drain message again.
func (a *CapsuleActor) drain(ctx actor.Context, mb *Mailbox) {
	a.budget = drainBudget
	for a.budget > 0 {
		inv := mb.pop()
		if inv == nil {
			return
		}
		a.budget--
		inv.mb.release(inv.Msg.Principal)
		a.batching = true
		a.invoke(ctx, inv)
		a.batching = false
	}
	ctx.Send(a.self, mb.wake) // woken stays set: the queue may hold more
}

// refuseQueued empties the intake of a stopping actor: each Invoke goes to
// the successor generation after a hot upgrade, or is answered with a
// typed "closed" error, so no requester waits for its timeout.
func (a *CapsuleActor) refuseQueued() {
	for inv := a.mb.pop(); inv != nil; inv = a.mb.pop() {
		inv.mb.release(inv.Msg.Principal)
		if a.successor != nil {
			inv.mb = nil
			a.system.Root.Send(a.successor, inv)
			continue
		}
		inv.chain.complete(inv.level, inv.index, capsule.Result{Kind: capsule.Errored, Code: "closed",
			Data: []byte("capsule " + a.id + " stopped")}, false)
	}
}

// batchFeed is the capsule.Batch of a drain: it lets a guest call go on
// with the Invokes queued in the actor's mailbox, and wait inside the call
// for the next one while the actor has nothing else to do. Its methods run
// on the actor's goroutine, inside the guest call (the actor owns
// everything they touch).
type batchFeed CapsuleActor

var _ capsule.Batch = (*batchFeed)(nil)

// idleWait bounds how long a guest call waits for the next Invoke of an
// idle capsule before it returns.
const idleWait = time.Second

// Next implements capsule.Batch: it completes the Invoke in progress
// exactly as invoke does after a call, then starts the next queued one if
// it may join the call: the drain's budget is not spent, it fits the
// exchange buffer and it is not a known poison message (those take the
// full path in invoke). Nothing else invoke checks before a call
// (successor, pause, quarantine, run loop) can change while the actor is
// inside one. With nothing queued it waits (up to idleWait) for an Invoke,
// and ends the call as soon as the actor has any other message.
func (f *batchFeed) Next(ctx context.Context, res capsule.Result, room int) (string, []byte, bool) {
	a := (*CapsuleActor)(f)
	a.completeCurrent(res)
	for {
		if a.budget <= 0 || ctx.Err() != nil {
			return "", nil, false
		}
		if next := a.mb.peek(); next != nil {
			payload, _ := next.payload()
			if _, poison := a.poison(next.Msg, payload); poison || len(next.Action)+len(payload) > room {
				return "", nil, false
			}
			a.mb.pop() // the one peeked: only this actor pops
			a.budget--
			a.batched++
			next.mb.release(next.Msg.Principal)
			a.cur, a.curPayload = next, payload
			a.state.BeginInvocation(next.Msg)
			return next.Action, payload, true
		}
		if !a.waitForInvoke(ctx) {
			return "", nil, false
		}
	}
}

// completeCurrent completes the Invoke in progress with res, as invoke
// does after a call.
func (a *CapsuleActor) completeCurrent(res capsule.Result) {
	st, m := a.state, a.cur
	if m == nil {
		return
	}
	replied := st.Replied()
	st.EndInvocation()
	a.cur, a.curPayload = nil, nil
	if res.Kind == capsule.Errored {
		a.log.Warn().Str("action", m.Action).Str("topic", m.Msg.Topic).Bytes("error", res.Data).Msg("handler error")
	}
	m.chain.complete(m.level, m.index, res, replied)
}

// waitForInvoke waits, inside a guest call, until an Invoke is queued
// (true), or the actor has another message, ctx ends or idleWait passes
// (false).
func (a *CapsuleActor) waitForInvoke(ctx context.Context) bool {
	w := a.cfg.watch
	if w == nil {
		return false
	}
	w.clearNote()
	if w.others() {
		return false
	}
	if !a.mb.park() {
		return true
	}
	defer a.mb.unpark()
	if a.idle == nil {
		a.idle = time.NewTimer(idleWait)
	} else {
		a.idle.Reset(idleWait)
	}
	defer a.idle.Stop()
	select {
	case <-a.mb.signal:
		return true
	case <-w.note:
		return false
	case <-ctx.Done():
		return false
	case <-a.idle.C:
		return false
	}
}

// poison reports how many times the message already crashed the capsule
// and whether that makes it a poison message. The fingerprint is computed
// only once something has crashed: the common path never hashes payloads.
func (a *CapsuleActor) poison(msg *bus.Message, payload []byte) (crashes int, poison bool) {
	if len(a.crashes) == 0 {
		return 0, false
	}
	crashes = a.crashes[fingerprint(msg, payload)]
	return crashes, crashes >= a.cfg.Manifest.Supervision.PoisonThreshold
}

// fingerprint identifies a message for poison detection: same topic,
// principal and payload.
func fingerprint(m *bus.Message, payload []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(m.Topic))
	h.Write([]byte{0})
	h.Write([]byte(m.Principal))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum64()
}

func itoa(n int) string { return strconv.Itoa(n) }

// DeadLetter is the JSON body published on astrid.v1.deadletter.
type DeadLetter struct {
	Capsule   string          `json:"capsule"`
	Topic     string          `json:"topic"`
	Principal string          `json:"principal,omitempty"`
	Reason    string          `json:"reason"`
	Crashes   int             `json:"crashes"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	PayloadB  []byte          `json:"payload_bytes,omitempty"`
	Time      string          `json:"time"`
}

// DeadLetterTopic is where messages that crashed a capsule are parked.
const DeadLetterTopic = "astrid.v1.deadletter"

func (a *CapsuleActor) deadLetter(msg *bus.Message, payload []byte, reason string, crashes int) {
	dl := DeadLetter{Capsule: a.id, Topic: msg.Topic, Principal: msg.Principal, Reason: reason, Crashes: crashes,
		Time: time.Now().UTC().Format(time.RFC3339Nano)}
	if json.Valid(payload) {
		dl.Payload = payload
	} else {
		dl.PayloadB = payload
	}
	body, _ := json.Marshal(dl)
	a.log.Warn().Str("topic", msg.Topic).Str("reason", reason).Msg("message dead-lettered")
	if a.cfg.Tenancy.OnDeadLetter != nil {
		a.cfg.Tenancy.OnDeadLetter(a.id)
	}
	if err := a.cfg.Transport.Publish(&bus.Message{Topic: DeadLetterTopic, Payload: body,
		Principal: msg.Principal, Attribution: msg.Attribution, Origin: bus.OriginSystem}); err != nil {
		a.log.Error().Err(err).Msg("dead letter not published")
	}
}

func failureText(id string, err error) string {
	var te *capsule.TrapError
	if errors.As(err, &te) {
		return "capsule " + id + " failed: " + te.Kind.String()
	}
	return "capsule " + id + " failed"
}

func (a *CapsuleActor) failed(ctx actor.Context, err error, msg *bus.Message, repeat bool) {
	a.status = "failed"
	ctx.Send(a.parent, &CapsuleFailed{Generation: a.cfg.Generation, ID: a.id, Incarnation: a.inc, Err: err, Message: msg, Repeat: repeat, At: time.Now()})
}

func (a *CapsuleActor) runEnded(ctx actor.Context, m *runEnded) {
	if m.inst != a.inst || a.inst == nil {
		return
	}
	// The run goroutine is done: its State may be read and torn down.
	inflight, replied := a.state.InFlight(), a.state.Replied()
	a.endIncarnation()
	err := m.err
	if err == nil {
		err = &capsule.TrapError{Capsule: a.id, Export: "run", Kind: capsule.FailExit, ExitCode: 0}
	}
	a.status = "stopped"
	var te *capsule.TrapError
	abnormal := !errors.As(err, &te) || (!te.Normal() && te.Kind != capsule.FailCancelled)
	repeat := false
	if abnormal {
		a.status = "failed"
		if inflight != nil && !replied {
			repeat = a.recoverInFlight(inflight, err)
		}
	}
	ctx.Send(a.parent, &CapsuleFailed{Generation: a.cfg.Generation, ID: a.id, Incarnation: m.incarnation, Err: err,
		Message: msgOf(inflight), Repeat: repeat, At: time.Now()})
}

func msgOf(d *hoststate.Delivery) *bus.Message {
	if d == nil {
		return nil
	}
	return d.Msg
}

// recoverInFlight handles the message a run loop was handling when it
// crashed: it goes back to the head of the inbox for the next incarnation
// (retry once), or to the dead-letter topic when it already crashed the
// capsule, when the policy says deadletter, or when it is a known poison
// message. A requester waiting for it gets a typed error in that case.
// It reports whether the message had crashed the capsule before.
func (a *CapsuleActor) recoverInFlight(d *hoststate.Delivery, err error) bool {
	sup := a.cfg.Manifest.Supervision
	fp := fingerprint(d.Msg, d.Msg.Payload)
	a.crashes[fp]++
	n := a.crashes[fp]
	if sup.OnCrash == "retry" && n == 1 && n < sup.PoisonThreshold {
		a.inbox.PushFront(d)
		a.log.Info().Str("topic", d.Msg.Topic).Msg("the message being handled when the run loop crashed will be retried first")
		return false
	}
	a.deadLetter(d.Msg, d.Msg.Payload, failureText(a.id, err), n)
	if d.Msg.Reply != "" {
		a.cfg.Transport.Respond(d.Msg, nil, "capsule-failed", failureText(a.id, err)+"; message dead-lettered")
	}
	return n > 1
}

// cancelRun ends a run loop's incarnation so it stops taking messages.
func (a *CapsuleActor) cancelRun() {
	if a.cfg.Module.Exports().Run {
		a.endIncarnation()
	}
}

// quarantine ends the current incarnation and keeps the actor answering
// with typed errors.
func (a *CapsuleActor) quarantine(reason string) {
	a.quarantined = reason
	a.status = "quarantined"
	a.endIncarnation()
}

// endIncarnation cancels and closes the current incarnation, if any.
func (a *CapsuleActor) endIncarnation() {
	if a.state != nil {
		a.state.Cancel(errors.New("incarnation ended"))
	}
	if a.inst != nil {
		a.inst.Close() // also stops a guest spinning in wasm
	}
	stopped := true
	if a.runDone != nil {
		select {
		case <-a.runDone:
		case <-time.After(5 * time.Second):
			stopped = false
			a.log.Error().Msg("run loop did not stop within 5s of cancellation; its subscriptions are leaked")
		}
	}
	// Only once the run goroutine is done: it owns the subscriptions while
	// it runs.
	if a.state != nil && stopped {
		a.state.CloseSubscriptions()
	}
	a.inst, a.state = nil, nil
}

// stop ends the incarnation: cancels every blocking host call, waits for
// the run goroutine, closes the instance and leaves the router.
func (a *CapsuleActor) stop() {
	if a.cfg.Router != nil && a.routed {
		a.cfg.Router.Remove(a.id, a.self)
	}
	a.release()
}

// release is stop but for the routes.
func (a *CapsuleActor) release() {
	if a.cancel != nil {
		a.cancel()
	}
	a.inbox.Close()
	a.endIncarnation()
	a.status = "stopped"
}
