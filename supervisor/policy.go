package supervisor

import (
	"math/rand/v2"
	"time"

	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/manifests"
)

// Directive is what the supervisor does about one capsule failure.
type Directive uint8

// Directives.
const (
	// Resume: nothing to restart (a handler call failed; the actor already
	// replaced the instance for the next message).
	Resume Directive = iota
	// RestartAfter: start a new incarnation after the backoff.
	RestartAfter
	// Stop: the capsule ended and its policy says not to restart it.
	Stop
	// Quarantine: restart intensity exceeded; the capsule stays down.
	Quarantine
	// Escalate: restart intensity exceeded and the policy says escalate:
	// the capsule's group fails and the failure goes up the tree.
	Escalate
)

func (d Directive) String() string {
	return [...]string{"resume", "restart", "stop", "quarantine", "escalate"}[d]
}

// tracker is the restart bookkeeping of one capsule, keyed by capsule id
// (never by incarnation: Astrid #1541 restarted forever because its
// trackers were keyed by generation).
//
// # Concurrency
//
// Owned by the supervisor actor.
type tracker struct {
	policy   manifests.Supervision
	restarts []time.Time // within the intensity window
	attempt  int         // consecutive restarts, for backoff
	lastUp   time.Time   // when the current incarnation became ready
}

// decide returns the directive and backoff for a failure at now.
// runLoop reports whether the capsule is a run-loop capsule (a handler
// capsule's failed call does not end the capsule).
func (t *tracker) decide(kind capsule.FailureKind, normal, runLoop bool, now time.Time) (Directive, time.Duration) {
	if kind == capsule.FailCancelled {
		return Stop, 0
	}
	p := t.policy
	abnormal := !normal
	switch p.Restart {
	case "temporary":
		return Stop, 0
	case "transient":
		if !abnormal {
			return Stop, 0
		}
	}
	if !runLoop && abnormal {
		// A trap inside a handler is an invocation error: the actor already
		// replaced the instance. It still counts toward intensity so a
		// capsule crashing on every message ends up quarantined.
		if t.count(now) >= p.MaxRestarts {
			return Quarantine, 0
		}
		t.restarts = append(t.restarts, now)
		return Resume, 0
	}
	// Reset the backoff after a stable period.
	if !t.lastUp.IsZero() && now.Sub(t.lastUp) >= p.ResetAfter {
		t.attempt = 0
	}
	if t.count(now) >= p.MaxRestarts {
		return Quarantine, 0
	}
	t.restarts = append(t.restarts, now)
	t.attempt++
	return RestartAfter, backoff(p, t.attempt)
}

// count prunes restarts older than the window and returns how many remain.
func (t *tracker) count(now time.Time) int {
	w := t.policy.Within
	i := 0
	for i < len(t.restarts) && now.Sub(t.restarts[i]) > w {
		i++
	}
	t.restarts = t.restarts[i:]
	return len(t.restarts)
}

// backoff is initial*multiplier^(attempt-1), capped, with full jitter over
// the upper half (so it never collapses to zero): d/2 + rand[0, d/2].
func backoff(p manifests.Supervision, attempt int) time.Duration {
	d := float64(p.BackoffInitial)
	mult := p.BackoffMultiplier
	if mult < 1 {
		mult = 2
	}
	for i := 1; i < attempt && d < float64(p.BackoffMax); i++ {
		d *= mult
	}
	d = min(d, float64(p.BackoffMax))
	half := d / 2
	return time.Duration(half + rand.Float64()*half)
}
