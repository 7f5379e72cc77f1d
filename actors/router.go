package actors

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/hoststate"
)

// Router dispatches messages to interceptor bindings (the [subscribe]
// entries with a handler) of the capsules on this node, following the
// reference dispatcher (astrid-semantics.md §4.7): strict matching,
// priority order (lower first, ties broken by capsule id then action),
// same-priority fan-out, an ordered chain with continue/final/deny across
// priorities, errors continue the chain. When the message carries a NATS
// reply subject the chain's outcome is sent back as the reply, so `nats req`
// against a capsule just works.
//
// The Router holds one NATS subscription per distinct binding pattern, each
// in the NATS queue group RouterQueue, which every node's router joins. The
// server treats all the subscriptions of one queue group that match a
// subject as one group, whatever their patterns: a message reaches exactly
// one matching router subscription in the whole cluster, and that
// subscription's router runs its node's whole chain (every binding matching
// the topic; interceptor priority is per node). So when several patterns of
// one node match a topic (a.b and a.*), the message is still dispatched
// once, by whichever subscription received it. Run-loop subscriptions
// (ipc_subscribe) are plain subscriptions and still fan out to every node.
//
// # Concurrency
//
// Goroutine-safe. Bindings are an immutable snapshot swapped atomically, so
// the NATS callback path takes no lock. A chain is advanced by the actors
// running it, handing off through messages and an atomic counter.
type Router struct {
	t    *Transport
	root *actor.RootContext
	log  zerolog.Logger

	// profiles and onQuota enforce max_in_flight_calls (set before use).
	profiles hoststate.Profiles
	onQuota  func(hoststate.QuotaEvent)

	mu   sync.Mutex
	all  []route
	subs map[string]func() // pattern -> cancel
	snap atomic.Pointer[routeSet]
}

type route struct {
	capsule  string
	pid      *actor.PID
	action   string
	pattern  string
	priority uint32
	handle   uint64
	mb       *Mailbox
}

// RouterQueue is the NATS queue group of every router subscription: the
// routers of all nodes subscribed to a binding pattern share its messages,
// one node per message.
const RouterQueue = "astrid.router"

// Mailbox is one capsule actor's intake of Invokes. It bounds them and
// applies the capsule's [limits] overflow policy: "reject" (and
// "drop_oldest", which only a run-loop inbox can honour) answers the sender
// with a typed backpressure error at once; "block" makes the NATS callback
// wait until the mailbox has drained to half, pushing back on the publisher
// through NATS flow control.
//
// The router queues Invokes here instead of sending each one as an actor
// message, and wakes the actor with one drain message when the queue was
// idle; the actor takes them in order. Seeing what is queued lets the
// actor hand a whole run of messages to one guest call (capsule.Batch).
//
// # Concurrency
//
// Goroutine-safe: the router pushes and acquires slots, the owning actor
// pops and releases them. The queue itself is guarded by mu.
type Mailbox struct {
	slots  chan struct{}
	policy string
	// Producers blocked under "block" wait for room (guarded by mu) to be
	// closed, which release does at the low watermark (acquireBlocking).
	waiting atomic.Int32
	room    chan struct{}
	// per counts each principal's Invokes holding a slot, for the
	// max_in_flight_calls quota (one principal cannot fill the mailbox).
	per sync.Map // principal -> *atomic.Int32

	mu   sync.Mutex // guards the queue, the flags below and room
	q    []*Invoke  // FIFO from head
	head int
	// woken is set while a drain message is on its way to the actor or
	// being handled; the next push after the actor found the queue empty
	// sends a new one.
	woken bool
	// wake is the drain message, allocated once.
	wake *drain
	// parked is set while the owning actor waits inside a guest call for
	// the next Invoke (see batchFeed.Next); push then signals it.
	parked bool
	signal chan struct{}
}

// drain tells a capsule actor to take the Invokes queued in mb.
type drain struct{ mb *Mailbox }

// NewMailbox returns a mailbox holding at most size Invokes.
func NewMailbox(size int, policy string) *Mailbox {
	if size < 1 {
		size = 1
	}
	mb := &Mailbox{slots: make(chan struct{}, size), policy: policy, signal: make(chan struct{}, 1), room: make(chan struct{})}
	mb.wake = &drain{mb: mb}
	return mb
}

// push queues inv and reports whether the caller must send the wake
// message (the actor is not already draining).
func (mb *Mailbox) push(inv *Invoke) bool {
	mb.mu.Lock()
	mb.q = append(mb.q, inv)
	wake := !mb.woken
	mb.woken = true
	if mb.parked {
		select {
		case mb.signal <- struct{}{}:
		default:
		}
	}
	mb.mu.Unlock()
	return wake
}

// park marks the owning actor as waiting for the next Invoke, unless one
// is already queued (then it returns false). The actor then waits on
// mb.signal and calls unpark.
func (mb *Mailbox) park() bool {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.head < len(mb.q) {
		return false
	}
	select {
	case <-mb.signal: // a stale signal from an earlier wait
	default:
	}
	mb.parked = true
	return true
}

func (mb *Mailbox) unpark() {
	mb.mu.Lock()
	mb.parked = false
	mb.mu.Unlock()
}

// peek returns the next queued Invoke without taking it, or nil.
func (mb *Mailbox) peek() *Invoke {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.head == len(mb.q) {
		return nil
	}
	return mb.q[mb.head]
}

// pop takes the next queued Invoke. On an empty queue it returns nil and
// clears woken in the same critical section, so the next push wakes the
// actor again: nothing is left queued without a drain on its way.
func (mb *Mailbox) pop() *Invoke {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.head == len(mb.q) {
		mb.q, mb.head = mb.q[:0], 0
		mb.woken = false
		return nil
	}
	inv := mb.q[mb.head]
	mb.q[mb.head] = nil
	mb.head++
	if mb.head >= 256 && mb.head*2 >= len(mb.q) {
		// Reuse the consumed front instead of growing forever under a
		// queue that never empties.
		n := copy(mb.q, mb.q[mb.head:])
		clear(mb.q[n:])
		mb.q, mb.head = mb.q[:n], 0
	}
	return inv
}

// rearm marks a drain as on its way regardless of the queue, for an actor
// that (re)starts and sends itself one.
func (mb *Mailbox) rearm() {
	mb.mu.Lock()
	mb.woken = true
	mb.mu.Unlock()
}

func (mb *Mailbox) counter(principal string) *atomic.Int32 {
	if c, ok := mb.per.Load(principal); ok {
		return c.(*atomic.Int32)
	}
	c, _ := mb.per.LoadOrStore(principal, new(atomic.Int32))
	return c.(*atomic.Int32)
}

// acquire takes a slot for one Invoke of principal; wait allows blocking
// under the block policy. It returns "" on success, else the refusal code:
// "quota" when principal already holds limit slots (limit <= 0: no cap),
// "backpressure" when the mailbox is full.
func (mb *Mailbox) acquire(wait bool, principal string, limit int) string {
	if mb == nil {
		return ""
	}
	c := mb.counter(principal)
	if mb.policy == "block" {
		// Blocking already pushes back on the publisher; a per-principal
		// refusal would drop what the policy promises to deliver.
		limit = 0
	}
	if n := c.Add(1); limit > 0 && int(n) > limit {
		c.Add(-1)
		return "quota"
	}
	if wait && mb.policy == "block" {
		mb.acquireBlocking()
		return ""
	}
	select {
	case mb.slots <- struct{}{}:
		return ""
	default:
		c.Add(-1)
		return "backpressure"
	}
}

// acquireBlocking takes a slot, waiting while the mailbox is full. A
// waiter is woken only once the mailbox has drained to half its size (the
// low watermark), not at every release: a saturated capsule then costs its
// producer one wake-up per half mailbox instead of one per message.
func (mb *Mailbox) acquireBlocking() {
	for {
		select {
		case mb.slots <- struct{}{}:
			return
		default:
		}
		mb.waiting.Add(1)
		mb.mu.Lock()
		room := mb.room
		mb.mu.Unlock()
		// Re-check after registering: a release in between either left a
		// slot free or closes this room channel.
		select {
		case mb.slots <- struct{}{}:
			mb.waiting.Add(-1)
			return
		default:
		}
		<-room
		mb.waiting.Add(-1)
	}
}

// release frees the slot of one Invoke of principal; the actor calls it
// when it takes the Invoke off its mailbox.
func (mb *Mailbox) release(principal string) {
	if mb == nil {
		return
	}
	mb.counter(principal).Add(-1)
	select {
	case <-mb.slots:
	default:
	}
	if mb.waiting.Load() > 0 && len(mb.slots) <= cap(mb.slots)/2 {
		mb.mu.Lock()
		close(mb.room) // wake every blocked producer
		mb.room = make(chan struct{})
		mb.mu.Unlock()
	}
}

// Len returns how many Invokes hold a slot.
func (mb *Mailbox) Len() int {
	if mb == nil {
		return 0
	}
	return len(mb.slots)
}

// NewRouter returns a router publishing replies through t and sending to
// actors through root.
func NewRouter(t *Transport, root *actor.RootContext, log zerolog.Logger) *Router {
	r := &Router{t: t, root: root, log: log.With().Str("component", "router").Logger(), subs: map[string]func(){}}
	r.snap.Store(&routeSet{literal: map[string][]route{}})
	return r
}

// SetTenancy sets the quota profiles and the quota reporter; call it
// before the first Add.
func (r *Router) SetTenancy(p hoststate.Profiles, onQuota func(hoststate.QuotaEvent)) {
	r.profiles, r.onQuota = p, onQuota
}

// Add registers (or replaces) the bindings of capsule id, served by pid
// through mailbox mb, which must be pid's own (the actor that receives the
// drain message takes every Invoke queued in it); a nil mb sends each
// Invoke to pid as an actor message. Patterns the capsule no longer binds lose their
// subscription when no other capsule binds them.
func (r *Router) Add(id string, pid *actor.PID, bindings []hoststate.Binding, mb *Mailbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = slices.DeleteFunc(r.all, func(rt route) bool { return rt.capsule == id })
	for _, b := range bindings {
		r.all = append(r.all, route{capsule: id, pid: pid, action: b.Action, pattern: b.Topic, priority: b.Priority, handle: b.HandleID, mb: mb})
	}
	r.publishLocked()
	for _, b := range bindings {
		if _, ok := r.subs[b.Topic]; ok {
			continue
		}
		cancel, err := r.t.QueueSubscribeStrict(b.Topic, RouterQueue, r.dispatch)
		if err != nil {
			r.log.Error().Err(err).Str("pattern", b.Topic).Msg("cannot subscribe interceptor pattern")
			continue
		}
		r.subs[b.Topic] = cancel
	}
	r.unsubscribeUnusedLocked()
	// The server must have the subscriptions before anyone is told the
	// capsule is ready.
	if err := r.t.Flush(); err != nil {
		r.log.Warn().Err(err).Msg("flush after subscribe")
	}
}

// Remove drops the bindings of capsule id served by pid. Routes of id that
// another actor took over since (a later Add) stay: only their owner
// removes them.
func (r *Router) Remove(id string, pid *actor.PID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = slices.DeleteFunc(r.all, func(rt route) bool { return rt.capsule == id && rt.pid.Equal(pid) })
	r.publishLocked()
	if r.unsubscribeUnusedLocked() {
		// Once Remove returns, the server no longer sends the dropped
		// patterns here.
		if err := r.t.Flush(); err != nil {
			r.log.Warn().Err(err).Msg("flush after unsubscribe")
		}
	}
}

// unsubscribeUnusedLocked cancels the subscriptions of patterns no binding
// uses any more (a leftover queue subscription would take its share of the
// cluster's messages for the pattern and drop them) and reports whether it
// cancelled any.
func (r *Router) unsubscribeUnusedLocked() bool {
	cancelled := false
	for pattern, cancel := range r.subs {
		if !slices.ContainsFunc(r.all, func(rt route) bool { return rt.pattern == pattern }) {
			cancel()
			delete(r.subs, pattern)
			cancelled = true
		}
	}
	return cancelled
}

// Close cancels every subscription.
func (r *Router) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, cancel := range r.subs {
		cancel()
		delete(r.subs, p)
	}
	r.all = nil
	r.publishLocked()
}

// routeSet is an immutable snapshot of the bindings, indexed so a message
// costs a map lookup plus the wildcard bindings, not a scan of every
// binding on the node. Both lists are in dispatch order.
type routeSet struct {
	literal map[string][]route // bindings whose pattern has no wildcard, by topic
	wild    []route            // bindings with a * segment
}

func routeOrder(a, b route) int {
	return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.capsule, b.capsule), cmp.Compare(a.action, b.action))
}

func (r *Router) publishLocked() {
	all := slices.Clone(r.all)
	slices.SortStableFunc(all, routeOrder)
	set := &routeSet{literal: map[string][]route{}}
	for _, rt := range all {
		if strings.Contains(rt.pattern, "*") {
			set.wild = append(set.wild, rt)
		} else {
			set.literal[rt.pattern] = append(set.literal[rt.pattern], rt)
		}
	}
	r.snap.Store(set)
}

// dispatch runs on the NATS callback of the one router subscription that
// received m (see Router): it only turns the message into actor messages.
// m is valid only during the call (QueueSubscribeStrict): the chain keeps
// a copy.
func (r *Router) dispatch(m *bus.Message) {
	set := r.snap.Load()
	lit := set.literal[m.Topic]
	n, first := len(lit), -1
	for i := range set.wild {
		if !bus.MatchStrict(set.wild[i].pattern, m.Topic) {
			continue
		}
		if first < 0 {
			first = i
		}
		n++
	}
	if n == 0 {
		return
	}
	c := &chain{r: r, msg: *m}
	if n == 1 {
		// The common case: one binding. No slices are allocated; the
		// chain's single level points into the immutable snapshot.
		if len(lit) == 1 {
			c.single[0] = lit[:1:1]
		} else {
			c.single[0] = set.wild[first : first+1 : first+1]
		}
		c.levels = c.single[:]
		c.start(0)
		return
	}
	matched := make([]route, 0, n)
	matched = append(matched, lit...)
	for _, rt := range set.wild {
		if bus.MatchStrict(rt.pattern, m.Topic) {
			matched = append(matched, rt)
		}
	}
	slices.SortStableFunc(matched, routeOrder)
	for i := 0; i < len(matched); {
		j := i + 1
		for j < len(matched) && matched[j].priority == matched[i].priority {
			j++
		}
		c.levels = append(c.levels, matched[i:j])
		i = j
	}
	c.start(0)
}

// chain is one message travelling through the interceptor levels.
type chain struct {
	r      *Router
	msg    bus.Message // a copy: the delivered one is reused (dispatch)
	levels [][]route
	single [1][]route // backing of levels for a one-binding chain
	inv    Invoke     // the Invoke of a one-binding chain (no second allocation)

	// Written by the actor completing a level before it starts the next one
	// (a message send orders the two).
	cur      []byte
	modified bool
	anyOK    bool
	replied  bool // a guest answered with ipc_reply

	// For fan-out levels.
	pending atomic.Int32
	results []capsule.Result
	flags   []uint8
}

const flagReplied = 1

func (c *chain) payload(int) ([]byte, bool) {
	if c.modified {
		return c.cur, true
	}
	return c.msg.Payload, false
}

func (c *chain) start(level int) {
	lv := c.levels[level]
	if len(lv) > 1 {
		c.results = make([]capsule.Result, len(lv))
		c.flags = make([]uint8, len(lv))
		c.pending.Store(int32(len(lv)))
	}
	for i, rt := range lv {
		// Only the first level runs on the NATS callback, where blocking
		// pushes back on the publisher; later levels run on actors, which
		// must not block on each other.
		limit := 0
		if c.r.profiles != nil {
			limit = c.r.profiles.Profile(c.msg.Principal).MaxInFlight
		}
		if code := rt.mb.acquire(level == 0, c.msg.Principal, limit); code != "" {
			detail := "capsule " + rt.capsule + " mailbox is full"
			if code == "quota" {
				detail = fmt.Sprintf("principal %s already has %d messages queued at capsule %s", c.msg.Principal, limit, rt.capsule)
				if c.r.onQuota != nil {
					c.r.onQuota(hoststate.QuotaEvent{Capsule: rt.capsule, Principal: c.msg.Principal, Quota: "max_in_flight_calls", Limit: int64(limit)})
				}
			}
			c.r.log.Debug().Str("capsule", rt.capsule).Str("topic", c.msg.Topic).Str("code", code).Msg("message refused")
			c.complete(level, i, capsule.Result{Kind: capsule.Errored, Code: code, Data: []byte(detail)}, false)
			continue
		}
		inv := &c.inv
		if len(c.levels) > 1 || len(lv) > 1 {
			inv = new(Invoke)
		}
		*inv = Invoke{Msg: &c.msg, Action: rt.action, Handle: rt.handle, chain: c, level: level, index: i, mb: rt.mb}
		if rt.mb == nil {
			c.r.root.Send(rt.pid, inv)
		} else if rt.mb.push(inv) {
			c.r.root.Send(rt.pid, rt.mb.wake)
		}
	}
}

// complete records the outcome of one member of level. replied means the
// guest answered the requester itself or, for delivery to a run loop, that
// the run loop owns the answer (it replies with ipc_reply).
func (c *chain) complete(level, index int, res capsule.Result, replied bool) {
	if c == nil {
		return
	}
	lv := c.levels[level]
	if len(lv) > 1 {
		c.results[index] = res
		if replied {
			c.flags[index] = flagReplied
		}
		if c.pending.Add(-1) != 0 {
			return
		}
		c.finishLevel(level, c.results, c.flags)
		return
	}
	var f uint8
	if replied {
		f = flagReplied
	}
	c.finishLevel(level, []capsule.Result{res}, []uint8{f})
}

func (c *chain) finishLevel(level int, results []capsule.Result, flags []uint8) {
	var stop *capsule.Result
	for i := range results {
		res := &results[i]
		if flags[i]&flagReplied != 0 {
			c.replied = true
		}
		switch res.Kind {
		case capsule.Final, capsule.Deny:
			c.anyOK = true
			if stop == nil {
				stop = res
			}
		case capsule.Continue:
			c.anyOK = true
			if res.Data != nil {
				c.cur, c.modified = res.Data, true
			}
		case capsule.Errored:
			c.r.log.Debug().Str("topic", c.msg.Topic).Str("capsule", c.levels[level][i].capsule).Msg("interceptor error; chain continues")
		}
	}
	if stop != nil {
		c.finish(*stop)
		return
	}
	if level+1 < len(c.levels) {
		c.start(level + 1)
		return
	}
	if !c.anyOK {
		// Every handler failed: tell a requester instead of letting it time out.
		var last capsule.Result
		for _, r := range results {
			if r.Kind == capsule.Errored {
				last = r
			}
		}
		c.finish(last)
		return
	}
	data, _ := c.payload(0)
	c.finish(capsule.Result{Kind: capsule.Continue, Data: data})
}

// finish answers a requester, if there is one and no guest already did.
func (c *chain) finish(res capsule.Result) {
	if c.msg.Reply == "" || c.replied {
		return
	}
	switch res.Kind {
	case capsule.Final, capsule.Continue:
		c.r.t.Respond(&c.msg, res.Data, "", "")
	case capsule.Deny:
		c.r.t.Respond(&c.msg, nil, "denied", string(res.Data))
	case capsule.Errored:
		code := res.Code
		if code == "" {
			code = "handler-error"
		}
		c.r.t.Respond(&c.msg, nil, code, string(res.Data))
	}
}
