package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/actors"
	"github.com/astrid-go/astrid/capsule"
)

// CapsuleInfo is one capsule as the supervisor sees it.
type CapsuleInfo struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	State    string `json:"state"` // starting, ready, failed, quarantined, stopped
	Restarts int    `json:"restarts"`
	RunLoop  bool   `json:"run_loop"`
	// LastFailure is the reason of the latest failure, if any.
	LastFailure string `json:"last_failure,omitempty"`
}

// Event is the JSON body of astrid.v1.capsule.<id>.<verb> events.
type Event struct {
	Capsule     string  `json:"capsule"`
	Version     string  `json:"version,omitempty"`
	Event       string  `json:"event"`
	Incarnation int     `json:"incarnation,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	Kind        string  `json:"kind,omitempty"`
	Attempt     int     `json:"attempt,omitempty"`
	BackoffMs   float64 `json:"backoff_ms,omitempty"`
	Directive   string  `json:"directive,omitempty"`
	Previous    string  `json:"previous_version,omitempty"`
	Node        string  `json:"node,omitempty"`
	// Revision is the lease revision (fencing token) of leased and
	// lease_lost events of singleton capsules.
	Revision uint64 `json:"revision,omitempty"`
	Time     string `json:"time"`
}

// spawn asks the supervisor actor to start a capsule actor.
type spawn struct {
	cfg   actors.CapsuleConfig
	group GroupConfig
	graph *Graph
	ready chan struct{}
}

type list struct{}

// upgrade starts a new generation of a running capsule beside the old one
// and switches traffic to it once it is ready (hot upgrade).
type upgrade struct {
	cfg  actors.CapsuleConfig
	done chan error
}

type upgradeTimeout struct {
	id  string
	gen int
}

// pids asks for the capsule actors in boot order.
type pids struct{}

// readinessCheck fires when a run-loop incarnation's readiness timeout ends.
type readinessCheck struct {
	id          string
	incarnation int
}

// restartDue fires when a capsule's backoff ends.
type restartDue struct {
	id     string
	reason string
}

// supervisorActor is the parent of every capsule actor on the node. It
// receives their lifecycle events, applies each capsule's restart policy
// and its group's strategy, pauses dependents while a dependency restarts,
// and publishes events.
//
// # Concurrency
//
// All fields are owned by the actor.
type supervisorActor struct {
	node     *Node
	log      zerolog.Logger
	capsules map[string]*child
	byPID    map[string]*child
	graph    *Graph
	// pending holds the new generation of a capsule being hot-upgraded
	// until it is ready (then it replaces capsules[id]) or fails.
	pending map[string]*child
	order   []string
}

type child struct {
	id       string
	version  string
	pid      *actor.PID
	runLoop  bool
	state    string
	tr       tracker
	group    GroupConfig
	ready    chan struct{} // closed at first readiness (boot wait)
	gen      int
	done     chan error // pending upgrade: the caller waiting
	inc      int
	restart  int
	last     string
	readyTO  time.Duration
	pausedBy map[string]bool      // dependencies currently restarting
	cfg      actors.CapsuleConfig // to start it again after an operator stop
}

func (s *supervisorActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *spawn:
		s.spawn(ctx, m)
	case *actors.CapsuleStarted:
		c := s.current(m.ID, m.Generation)
		if c == nil || c.state == "quarantined" {
			return
		}
		c.state = "starting"
		c.inc = m.Incarnation
		verb := "started"
		if m.Incarnation > 1 {
			verb = "restarted"
		}
		s.emit(Event{Capsule: c.id, Version: c.version, Event: verb, Incarnation: m.Incarnation, Attempt: c.tr.attempt})
		if c.runLoop {
			root, self, inc := ctx.ActorSystem().Root, ctx.Self(), m.Incarnation
			time.AfterFunc(c.readyTO, func() { root.Send(self, &readinessCheck{id: c.id, incarnation: inc}) })
		}
	case *actors.CapsuleReady:
		if p := s.pending[m.ID]; p != nil && p.gen == m.Generation {
			s.switchOver(ctx, p, m.Incarnation)
			return
		}
		c := s.current(m.ID, m.Generation)
		if c == nil || c.state == "quarantined" {
			return
		}
		c.state = "ready"
		c.tr.lastUp = time.Now()
		if c.ready != nil {
			close(c.ready)
			c.ready = nil
		}
		s.emit(Event{Capsule: c.id, Version: c.version, Event: "ready", Incarnation: m.Incarnation})
		s.resumeDependents(ctx, c)
	case *readinessCheck:
		c := s.capsules[m.id]
		if c == nil || c.inc != m.incarnation || c.state != "starting" {
			return
		}
		err := &capsule.TrapError{Capsule: c.id, Export: "run", Kind: capsule.FailReadiness,
			Err: fmt.Errorf("not ready within %v", c.readyTO)}
		s.failed(ctx, &actors.CapsuleFailed{ID: c.id, Incarnation: m.incarnation, Err: err, At: time.Now()})
	case *restartDue:
		c := s.capsules[m.id]
		if c == nil || c.state == "quarantined" || c.pid == nil {
			return
		}
		ctx.Send(c.pid, &actors.Restart{Reason: m.reason})
	case *actors.CapsuleFailed:
		if p := s.pending[m.ID]; p != nil && p.gen == m.Generation {
			s.rollback(ctx, p, m.Err)
			return
		}
		if s.current(m.ID, m.Generation) == nil {
			return // a retired generation
		}
		s.failed(ctx, m)
	case *upgrade:
		s.upgrade(ctx, m)
	case *capsulePIDs:
		s.pidsOf(ctx, m)
	case *operate:
		ctx.Respond(s.operate(ctx, m))
	case *upgradeTimeout:
		if p := s.pending[m.id]; p != nil && p.gen == m.gen {
			s.rollback(ctx, p, fmt.Errorf("not ready within %v", p.readyTO))
		}
	case *pids:
		var out []*actor.PID
		for _, id := range s.order {
			if c := s.capsules[id]; c != nil && c.pid != nil {
				out = append(out, c.pid)
			}
		}
		ctx.Respond(out)
	case *list:
		out := make([]CapsuleInfo, 0, len(s.capsules))
		for _, c := range s.capsules {
			out = append(out, CapsuleInfo{ID: c.id, Version: c.version, State: c.state, Restarts: c.restart, RunLoop: c.runLoop, LastFailure: c.last})
		}
		ctx.Respond(out)
	case *actor.Terminated:
		if c := s.byPID[m.Who.Id]; c != nil && c.state != "quarantined" {
			c.state = "stopped"
		}
	}
}

// current returns the serving generation of id if gen is it.
func (s *supervisorActor) current(id string, gen int) *child {
	c := s.capsules[id]
	if c == nil || c.gen != gen {
		return nil
	}
	return c
}

func (s *supervisorActor) spawn(ctx actor.Context, m *spawn) {
	id := m.cfg.Manifest.ID()
	if m.graph != nil {
		s.graph = m.graph
	}
	c := s.newChild(m.cfg, m.group, m.ready)
	if c.pid = s.start(ctx, c, m.cfg); c.pid == nil {
		return
	}
	s.capsules[id] = c
	if !slices.Contains(s.order, id) { // a singleton starts again when it regains its lease
		s.order = append(s.order, id)
	}
}

func (s *supervisorActor) newChild(cfg actors.CapsuleConfig, group GroupConfig, ready chan struct{}) *child {
	return &child{
		id: cfg.Manifest.ID(), version: cfg.Manifest.Package.VersionRaw, state: "starting", gen: cfg.Generation,
		runLoop: cfg.Module.Exports().Run, tr: tracker{policy: cfg.Manifest.Supervision}, ready: ready,
		group: group, readyTO: cfg.Manifest.Supervision.ReadinessTimeout, pausedBy: map[string]bool{},
		cfg: cfg,
	}
}

// start spawns the actor of c; nil on failure (logged and recorded).
func (s *supervisorActor) start(ctx actor.Context, c *child, cfg actors.CapsuleConfig) *actor.PID {
	id := c.id
	name := "capsule-" + id
	if c.gen > 0 {
		name = fmt.Sprintf("capsule-%s-g%d", id, c.gen)
	}
	props := actors.CapsuleProps(cfg)
	pid, err := ctx.SpawnNamed(props, name)
	if err != nil {
		s.log.Error().Err(err).Str("capsule", id).Msg("spawn failed")
		c.state = "failed"
		c.last = err.Error()
		return nil
	}
	s.byPID[pid.Id] = c
	return pid
}

func (s *supervisorActor) upgrade(ctx actor.Context, m *upgrade) {
	id := m.cfg.Manifest.ID()
	old := s.capsules[id]
	if old == nil || old.pid == nil {
		m.done <- fmt.Errorf("capsule %s is not running", id)
		return
	}
	if s.pending[id] != nil {
		m.done <- fmt.Errorf("capsule %s is already being upgraded", id)
		return
	}
	m.cfg.Generation = old.gen + 1
	m.cfg.Unrouted = true
	c := s.newChild(m.cfg, old.group, nil)
	c.done = m.done
	if c.pid = s.start(ctx, c, m.cfg); c.pid == nil {
		m.done <- fmt.Errorf("capsule %s: cannot start the new version", id)
		return
	}
	s.pending[id] = c
	root, self, gen := ctx.ActorSystem().Root, ctx.Self(), c.gen
	time.AfterFunc(c.readyTO, func() { root.Send(self, &upgradeTimeout{id: id, gen: gen}) })
	s.log.Info().Str("capsule", id).Str("from", old.version).Str("to", c.version).Msg("hot upgrade: new version starting beside the old one")
}

// switchOver makes the ready new generation p serve and retires the old.
func (s *supervisorActor) switchOver(ctx actor.Context, p *child, inc int) {
	old := s.capsules[p.id]
	delete(s.pending, p.id)
	p.state = "ready"
	p.tr.lastUp = time.Now()
	p.restart = old.restart
	s.capsules[p.id] = p
	ctx.Send(old.pid, &actors.Retire{Successor: p.pid})
	s.emit(Event{Capsule: p.id, Version: p.version, Event: "ready", Incarnation: inc})
	s.log.Info().Str("capsule", p.id).Str("from", old.version).Str("to", p.version).Msg("hot upgrade: traffic switched")
	p.done <- nil
}

// rollback abandons a new generation that failed before it was ready; the
// old one never stopped serving.
func (s *supervisorActor) rollback(ctx actor.Context, p *child, err error) {
	delete(s.pending, p.id)
	ctx.Stop(p.pid)
	old := s.capsules[p.id]
	s.emit(Event{Capsule: p.id, Version: p.version, Previous: old.version, Event: "failed", Kind: "upgrade",
		Reason: "upgrade rolled back: " + err.Error(), Directive: "rollback"})
	s.log.Error().Err(err).Str("capsule", p.id).Str("kept", old.version).Msg("hot upgrade rolled back")
	p.done <- fmt.Errorf("capsule %s: upgrade to %s rolled back: %w", p.id, p.version, err)
}

// dependentsOf returns the loaded capsules that depend on id, transitively.
func (s *supervisorActor) dependentsOf(id string) []*child {
	if s.graph == nil {
		return nil
	}
	var out []*child
	for _, d := range s.graph.After(id) {
		if c := s.capsules[d]; c != nil && c.pid != nil {
			out = append(out, c)
		}
	}
	return out
}

// pauseDependents holds the intake of every dependent of c while c is
// down; messages wait in their mailboxes, in order.
func (s *supervisorActor) pauseDependents(ctx actor.Context, c *child) {
	for _, d := range s.dependentsOf(c.id) {
		if len(d.pausedBy) == 0 {
			ctx.Send(d.pid, &actors.Pause{})
		}
		d.pausedBy[c.id] = true
	}
}

func (s *supervisorActor) resumeDependents(ctx actor.Context, c *child) {
	for _, d := range s.dependentsOf(c.id) {
		if !d.pausedBy[c.id] {
			continue
		}
		delete(d.pausedBy, c.id)
		if len(d.pausedBy) == 0 {
			ctx.Send(d.pid, &actors.Resume{})
		}
	}
}

// siblings returns the group members a restart of c also restarts:
// everyone else under one_for_all; under rest_for_one the members started
// after c in boot order and c's dependents.
func (s *supervisorActor) siblings(c *child) []*child {
	var ids []string
	switch c.group.Strategy {
	case OneForAll:
		for _, id := range c.group.Capsules {
			if id != c.id {
				ids = append(ids, id)
			}
		}
	case RestForOne:
		after := false
		for _, id := range c.group.Capsules {
			if id == c.id {
				after = true
				continue
			}
			if after {
				ids = append(ids, id)
			}
		}
		if s.graph != nil {
			for _, d := range s.graph.After(c.id) {
				if !slices.Contains(ids, d) {
					ids = append(ids, d)
				}
			}
		}
	}
	var out []*child
	for _, id := range ids {
		if sc := s.capsules[id]; sc != nil && sc.pid != nil && sc.state != "quarantined" {
			out = append(out, sc)
		}
	}
	return out
}

func (s *supervisorActor) failed(ctx actor.Context, m *actors.CapsuleFailed) {
	c := s.capsules[m.ID]
	if c == nil || c.state == "quarantined" {
		return
	}
	kind := m.Kind()
	var te *capsule.TrapError
	normal := errors.As(m.Err, &te) && te.Normal()
	now := time.Now()
	var (
		d    Directive
		wait time.Duration
	)
	switch {
	case m.Repeat && !c.runLoop:
		// A message that already crashed the capsule is being retried or
		// parked: it must not exhaust the restart budget on its own.
		d = Resume
	case m.Repeat:
		d, wait = RestartAfter, backoff(c.tr.policy, max(c.tr.attempt, 1))
	default:
		d, wait = c.tr.decide(kind, normal, c.runLoop, now)
	}
	if d == Quarantine && c.tr.policy.OnExhausted == "escalate" {
		d = Escalate
	}
	c.last = m.Err.Error()
	log := s.log.With().Str("capsule", c.id).Int("incarnation", m.Incarnation).Str("kind", kind.String()).
		Str("directive", d.String()).Logger()
	if te != nil && te.Stderr != "" {
		log = log.With().Str("guest_stderr", lastLines(te.Stderr, 6)).Logger()
	}
	ev := Event{Capsule: c.id, Version: c.version, Event: "failed", Incarnation: m.Incarnation,
		Reason: m.Err.Error(), Kind: kind.String(), Directive: d.String(), Attempt: c.tr.attempt}
	switch d {
	case Resume:
		c.restart++
		log.Warn().Err(m.Err).Msg("capsule call failed; fresh instance for the next message")
		s.emit(ev)
	case RestartAfter:
		c.restart++
		c.state = "failed"
		ev.BackoffMs = float64(wait) / float64(time.Millisecond)
		log.Warn().Err(m.Err).Dur("backoff", wait).Msg("capsule failed; restarting")
		s.emit(ev)
		s.pauseDependents(ctx, c)
		s.restartAfter(ctx, c, wait, kind.String())
		for _, sib := range s.siblings(c) {
			sib.state = "starting"
			s.emit(Event{Capsule: sib.id, Version: sib.version, Event: "failed", Kind: "sibling-restart",
				Reason: "restarted with " + c.id + " (" + c.group.Strategy + ")", Directive: "restart"})
			s.restartAfter(ctx, sib, wait, "sibling "+c.id)
		}
	case Quarantine:
		s.quarantine(ctx, c, m.Err.Error(), kind, ev, log)
	case Escalate:
		log.Error().Err(m.Err).Str("group", c.group.Name).Msg("capsule restart intensity exceeded; escalating: its group fails")
		s.emit(ev)
		for _, id := range c.group.Capsules {
			if gc := s.capsules[id]; gc != nil {
				s.quarantine(ctx, gc, "group "+c.group.Name+" failed: "+m.Err.Error(), kind,
					Event{Capsule: gc.id, Version: gc.version, Event: "failed", Kind: kind.String(), Directive: "escalate"}, log)
			}
		}
		body, _ := json.Marshal(Event{Capsule: c.id, Event: "group-failed", Reason: m.Err.Error(), Kind: kind.String(),
			Node: s.node.id, Time: now.UTC().Format(time.RFC3339Nano)})
		s.node.publishEvent("astrid.v1.group."+c.group.Name+".failed", body)
	case Stop:
		c.state = "stopped"
		if normal {
			log.Info().Msg("capsule ended normally; not restarted")
		} else {
			log.Warn().Err(m.Err).Msg("capsule ended; policy says no restart")
			s.emit(ev)
		}
		s.emit(Event{Capsule: c.id, Version: c.version, Event: "stopped", Reason: m.Err.Error(), Kind: kind.String()})
	}
}

func (s *supervisorActor) quarantine(ctx actor.Context, c *child, reason string, kind capsule.FailureKind, ev Event, log zerolog.Logger) {
	if c.state == "quarantined" {
		return
	}
	c.state = "quarantined"
	log.Error().Str("reason", reason).Int("max_restarts", c.tr.policy.MaxRestarts).Dur("within", c.tr.policy.Within).
		Msg("capsule quarantined")
	s.emit(ev)
	s.emit(Event{Capsule: c.id, Version: c.version, Event: "quarantined", Reason: reason, Kind: kind.String()})
	ctx.Send(c.pid, &actors.Quarantine{Reason: reason})
	// Dependents stay paused: their messages wait rather than fail.
}

func (s *supervisorActor) restartAfter(ctx actor.Context, c *child, wait time.Duration, reason string) {
	root, self, id := ctx.ActorSystem().Root, ctx.Self(), c.id
	time.AfterFunc(wait, func() { root.Send(self, &restartDue{id: id, reason: reason}) })
}

func (s *supervisorActor) emit(ev Event) { s.node.emit(ev) }

func lastLines(s string, n int) string {
	count := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' && i != len(s)-1 {
			count++
			if count == n {
				return s[i+1:]
			}
		}
	}
	return s
}

// actorPanics is the supervisor actor's strategy for its children: a panic
// in our own capsule-actor code (never a guest failure: those arrive as
// messages) restarts that actor, at most 3 times a minute, then stops it.
func actorPanics(log zerolog.Logger) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(3, time.Minute, func(reason any) actor.Directive {
		log.Error().Interface("reason", reason).Msg("panic in a capsule actor; restarting it")
		return actor.RestartDirective
	})
}
