package supervisor

import (
	"encoding/json"
	"errors"
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
	Node        string  `json:"node,omitempty"`
	Time        string  `json:"time"`
}

// spawn asks the supervisor actor to start a capsule actor.
type spawn struct {
	cfg   actors.CapsuleConfig
	ready chan struct{}
}

type list struct{}

// supervisorActor is the parent of every capsule actor on the node. It
// receives their lifecycle events, applies each capsule's restart policy
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
}

type child struct {
	id      string
	version string
	pid     *actor.PID
	runLoop bool
	state   string
	tr      tracker
	ready   chan struct{} // closed at first readiness (boot wait)
	restart int
	last    string
}

func (s *supervisorActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *spawn:
		id := m.cfg.Manifest.ID()
		c := &child{
			id: id, version: m.cfg.Manifest.Package.VersionRaw, state: "starting",
			runLoop: m.cfg.Module.Exports().Run, tr: tracker{policy: m.cfg.Manifest.Supervision}, ready: m.ready,
		}
		s.capsules[id] = c
		props := actor.PropsFromProducer(actors.NewCapsuleActor(m.cfg),
			actor.WithSupervisor(actor.NewOneForOneStrategy(3, time.Minute, func(reason any) actor.Directive {
				s.log.Error().Interface("reason", reason).Str("capsule", id).Msg("panic in capsule actor")
				return actor.RestartDirective
			})))
		pid, err := ctx.SpawnNamed(props, "capsule-"+id)
		if err != nil {
			s.log.Error().Err(err).Str("capsule", id).Msg("spawn failed")
			c.state = "failed"
			c.last = err.Error()
			return
		}
		c.pid = pid
		s.byPID[pid.Id] = c
	case *actors.CapsuleStarted:
		c := s.capsules[m.ID]
		if c == nil || c.state == "quarantined" {
			return
		}
		c.state = "starting"
		verb := "started"
		if m.Incarnation > 1 {
			verb = "restarted"
		}
		s.emit(Event{Capsule: c.id, Version: c.version, Event: verb, Incarnation: m.Incarnation, Attempt: c.tr.attempt})
	case *actors.CapsuleReady:
		c := s.capsules[m.ID]
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
	case *actors.CapsuleFailed:
		s.failed(ctx, m)
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

func (s *supervisorActor) failed(ctx actor.Context, m *actors.CapsuleFailed) {
	c := s.capsules[m.ID]
	if c == nil || c.state == "quarantined" {
		return
	}
	kind := m.Kind()
	var te *capsule.TrapError
	normal := errors.As(m.Err, &te) && te.Normal()
	now := time.Now()
	d, wait := c.tr.decide(kind, normal, c.runLoop, now)
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
		root, pid := ctx.ActorSystem().Root, c.pid
		time.AfterFunc(wait, func() { root.Send(pid, &actors.Restart{}) })
	case Quarantine:
		c.state = "quarantined"
		log.Error().Err(m.Err).Int("max_restarts", c.tr.policy.MaxRestarts).Dur("within", c.tr.policy.Within).
			Msg("capsule restart intensity exceeded; quarantined")
		s.emit(ev)
		s.emit(Event{Capsule: c.id, Version: c.version, Event: "quarantined", Reason: m.Err.Error(), Kind: kind.String()})
		ctx.Send(c.pid, &actors.Quarantine{Reason: m.Err.Error()})
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

func (s *supervisorActor) emit(ev Event) {
	ev.Time = time.Now().UTC().Format(time.RFC3339Nano)
	ev.Node = s.node.id
	body, _ := json.Marshal(ev)
	s.node.publishEvent("astrid.v1.capsule."+ev.Capsule+"."+ev.Event, body)
}

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
