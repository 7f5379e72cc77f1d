package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/actors"
	"github.com/astrid-go/astrid/bus"
)

// StateStandby is the state Node.Capsules reports for a singleton capsule
// whose lease another node holds: loaded and compiled here, not running.
const StateStandby = "standby"

// singletons runs the lease of every singleton capsule of the node: a
// capsule declared `[supervision] singleton = true` runs only on the node
// holding its lease in the lease bucket (key = capsule id, value = holder
// and expiry, revision = fencing token).
//
// Timing never compares two clocks. The holder renews every ttl/3 and
// stops its instance if no renewal succeeded within ttl - ttl/6 of sending
// the last good one. Another node takes the lease over only when the
// revision it observed has not changed for ttl by its own clock, with an
// update conditional on that revision. Since the holder sent its renewal
// before anyone observed it, the holder's deadline passes at least ttl/6
// before any takeover: never two instances at once (barring a process
// paused for longer than that margin, which the revision fences).
//
// # Concurrency
//
// One goroutine per singleton owns its lease state; mu guards what
// Capsules and Reload read (holding, the spawn template).
type singletons struct {
	n      *Node
	leases *bus.Leases
	ttl    time.Duration
	log    zerolog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	items map[string]*singleton
}

// singleton is one singleton capsule's lease loop.
type singleton struct {
	s   *singletons
	id  string
	log zerolog.Logger

	// Guarded by s.mu.
	sp      *spawn // how to start it (cfg and group); ready is Load's wait
	holding bool
	decided bool // the first decision (spawned or standby) was made

	mu     sync.Mutex // guards latest
	latest *bus.Lease // newest watch event not yet taken
	notify chan struct{}
}

func (n *Node) startSingletons(leases *bus.Leases) {
	ttl := n.cfg.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.single = &singletons{n: n, leases: leases, ttl: ttl, ctx: ctx, cancel: cancel,
		log: n.log.With().Str("component", "singleton").Logger(), items: map[string]*singleton{}}
}

// add starts the lease loop of a singleton capsule. sp.ready is closed
// when this node goes standby, or handed to the supervisor with the spawn
// (closed at readiness) when it takes the lease.
func (s *singletons) add(sp *spawn) {
	id := sp.cfg.Manifest.ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.items[id]; old != nil {
		old.sp = sp // a reload of the same capsule: newer template
		return
	}
	x := &singleton{s: s, id: id, sp: sp, notify: make(chan struct{}, 1),
		log: s.log.With().Str("capsule", id).Logger()}
	s.items[id] = x
	s.wg.Add(1)
	go x.run(s.ctx)
}

// template replaces the spawn template of a singleton (hot upgrade) and
// reports whether this node is standby for it (nothing to upgrade in
// place) and whether id is a singleton at all.
func (s *singletons) template(id string, cfg actors.CapsuleConfig) (standby, ok bool) {
	if s == nil {
		return false, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.items[id]
	if x == nil {
		return false, false
	}
	sp := *x.sp
	sp.cfg, sp.ready, sp.graph = cfg, nil, nil
	x.sp = &sp
	return !x.holding, true
}

// standby returns the singletons this node does not hold, with their
// versions.
func (s *singletons) standby() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for id, x := range s.items {
		if !x.holding {
			out[id] = x.sp.cfg.Manifest.Package.VersionRaw
		}
	}
	return out
}

// close stops every lease loop: held singletons are stopped and their
// leases deleted, so another node takes over at once.
func (s *singletons) close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// offer hands a watch event to the loop, keeping only the newest.
func (x *singleton) offer(l bus.Lease) {
	x.mu.Lock()
	if x.latest == nil || l.Revision >= x.latest.Revision {
		x.latest = &l
	}
	x.mu.Unlock()
	select {
	case x.notify <- struct{}{}:
	default:
	}
}

func (x *singleton) take() *bus.Lease {
	x.mu.Lock()
	defer x.mu.Unlock()
	l := x.latest
	x.latest = nil
	return l
}

// loop state, owned by run's goroutine.
type leaseState struct {
	holding   bool
	lease     bus.Lease // ours, while holding
	fence     uint64    // the revision we took it at
	renewedAt time.Time // when the write that produced lease was sent
	seen      *bus.Lease
	seenAt    time.Time
}

func (x *singleton) run(ctx context.Context) {
	defer x.s.wg.Done()
	ttl := x.s.ttl
	retry := max(ttl/12, 100*time.Millisecond)
	var st leaseState
	timer := time.NewTimer(0)
	defer timer.Stop()
	stopWatch, err := x.s.leases.Watch(ctx, x.id, x.offer)
	if err != nil {
		// An id the lease bucket cannot key: never start it anywhere.
		x.log.Error().Err(err).Msg("singleton capsule cannot be leased; not started")
		x.decide(false)
		return
	}
	defer stopWatch()
	for {
		select {
		case <-ctx.Done():
			if st.holding {
				x.release(&st)
			}
			x.decide(false)
			return
		case <-x.notify:
			l := x.take()
			if l == nil {
				continue
			}
			if st.holding {
				if l.Revision > st.lease.Revision && !l.Deleted && l.Holder == x.s.n.id {
					// Our own renewal whose answer we did not get (it timed
					// out): adopt its revision, keep the older send time.
					st.lease = *l
					continue
				}
				if l.Revision > st.lease.Revision && (l.Deleted || l.Holder != x.s.n.id) {
					x.lost(&st, fmt.Sprintf("lease taken by %q at revision %d", l.Holder, l.Revision))
					st.seen, st.seenAt = l, time.Now()
					timer.Reset(x.wait(&st))
				}
				continue
			}
			if st.seen == nil || l.Revision > st.seen.Revision {
				st.seen, st.seenAt = l, time.Now()
				timer.Reset(x.wait(&st))
			}
		case <-timer.C:
			if st.holding {
				timer.Reset(x.renew(ctx, &st, retry))
				continue
			}
			timer.Reset(x.acquire(ctx, &st, retry))
		}
	}
}

// wait is how long a standby node waits before trying to take the lease
// it last saw.
func (x *singleton) wait(st *leaseState) time.Duration {
	if st.seen == nil || st.seen.Deleted || st.seen.Holder == x.s.n.id {
		return 0
	}
	return max(time.Until(st.seenAt.Add(x.s.ttl)), 0)
}

// acquire tries to take the lease and returns when to try next.
func (x *singleton) acquire(ctx context.Context, st *leaseState, retry time.Duration) time.Duration {
	leases, me, ttl := x.s.leases, x.s.n.id, x.s.ttl
	// Short attempts: while the lease bucket elects a leader a call hangs
	// until its timeout, and the next attempt should follow the election
	// closely.
	actx, cancel := context.WithTimeout(ctx, max(ttl/6, 500*time.Millisecond))
	defer cancel()
	if st.seen == nil {
		l, err := leases.Get(actx, x.id)
		switch {
		case errors.Is(err, bus.ErrKeyNotFound):
			st.seen = &bus.Lease{Key: x.id, Deleted: true}
		case err != nil:
			x.log.Debug().Err(err).Msg("lease not readable; retrying")
			return retry
		default:
			st.seen = &l
		}
		st.seenAt = time.Now()
	}
	if d := x.wait(st); d > 0 {
		x.decide(false)
		return d
	}
	sent := time.Now()
	var (
		l   bus.Lease
		err error
	)
	if st.seen.Deleted {
		l, err = leases.Create(actx, x.id, me, sent.Add(ttl))
	} else {
		l, err = leases.Update(actx, x.id, me, sent.Add(ttl), st.seen.Revision)
	}
	switch {
	case err == nil:
	case errors.Is(err, bus.ErrCASMismatch):
		// Someone wrote first: read what they wrote and wait on it.
		st.seen = nil
		x.decide(false)
		return 0
	default:
		x.log.Debug().Err(err).Msg("lease not taken; retrying")
		x.decide(false)
		return retry
	}
	prev := st.seen
	st.holding, st.lease, st.fence, st.renewedAt, st.seen = true, l, l.Revision, sent, nil
	reason := "lease was free"
	if prev != nil && !prev.Deleted {
		reason = fmt.Sprintf("lease of %q expired at revision %d", prev.Holder, prev.Revision)
	}
	x.log.Info().Uint64("revision", l.Revision).Str("reason", reason).Msg("singleton lease taken; starting the capsule here")
	x.start()
	x.s.n.emit(Event{Capsule: x.id, Version: x.version(), Event: "leased", Revision: l.Revision, Reason: reason})
	// Keep the lease bucket's leader off this node, so that this node's
	// death does not also cost the bucket a leader election.
	sctx, cancel := context.WithTimeout(ctx, ttl/6)
	moved, err := leases.StepDownFrom(sctx, me)
	cancel()
	if err != nil {
		x.log.Debug().Err(err).Msg("lease bucket leader not moved")
	} else if moved {
		x.log.Info().Msg("lease bucket leader moved off the holder's node")
	}
	return ttl / 3
}

// renew extends the held lease and returns when to renew next. A holder
// that cannot renew before its deadline, or finds the revision moved,
// stops its instance at once.
func (x *singleton) renew(ctx context.Context, st *leaseState, retry time.Duration) time.Duration {
	ttl := x.s.ttl
	deadline := st.renewedAt.Add(ttl - ttl/6)
	if !time.Now().Before(deadline) {
		x.lost(st, "lease not renewed in time")
		return 0
	}
	sent := time.Now()
	rctx, cancel := context.WithDeadline(ctx, deadline)
	l, err := x.s.leases.Update(rctx, x.id, x.s.n.id, sent.Add(ttl), st.lease.Revision)
	cancel()
	switch {
	case err == nil:
		st.lease, st.renewedAt = l, sent
		return ttl / 3
	case ctx.Err() != nil:
		return 0 // shutting down: the loop releases the lease
	case errors.Is(err, bus.ErrCASMismatch):
		x.lost(st, "lease revision moved: another node holds it")
		return 0
	default:
		x.log.Warn().Err(err).Time("deadline", deadline).Msg("singleton lease not renewed; retrying")
		return max(min(retry, time.Until(deadline)), 0)
	}
}

// lost stops the instance of a lease this node no longer holds.
func (x *singleton) lost(st *leaseState, reason string) {
	fence := st.fence
	st.holding, st.seen = false, nil
	x.s.mu.Lock()
	x.holding = false
	x.s.mu.Unlock()
	x.log.Warn().Uint64("revision", fence).Str("reason", reason).Msg("singleton lease lost; stopping the capsule here")
	x.stopInstance()
	x.s.n.emit(Event{Capsule: x.id, Version: x.version(), Event: "lease_lost", Revision: fence, Reason: reason})
}

// release stops the instance and deletes the lease (clean shutdown), so
// the next node need not wait for the expiry.
func (x *singleton) release(st *leaseState) {
	x.stopInstance()
	st.holding = false
	x.s.mu.Lock()
	x.holding = false
	x.s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := x.s.leases.Delete(ctx, x.id, st.lease.Revision); err != nil {
		x.log.Warn().Err(err).Msg("singleton lease not released; it will expire")
		return
	}
	x.log.Info().Uint64("revision", st.fence).Msg("singleton lease released")
	x.s.n.emit(Event{Capsule: x.id, Version: x.version(), Event: "lease_lost", Revision: st.fence, Reason: "released at shutdown"})
}

// decide records the first decision; going standby first releases Load's
// wait.
func (x *singleton) decide(spawned bool) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.decided {
		return
	}
	x.decided = true
	if !spawned && x.sp.ready != nil {
		close(x.sp.ready)
		x.sp.ready = nil
	}
}

func (x *singleton) version() string {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	return x.sp.cfg.Manifest.Package.VersionRaw
}

// start spawns the capsule through the supervisor.
func (x *singleton) start() {
	x.s.mu.Lock()
	sp := *x.sp
	if x.decided {
		sp.ready, sp.graph = nil, nil // Load's wait was already released
	}
	x.decided = true
	x.sp.ready = nil
	x.holding = true
	x.s.mu.Unlock()
	x.s.n.system.Root.Send(x.s.n.sup, &sp)
}

// stopInstance stops the capsule's actors (serving and upgrading
// generations) and waits for them.
func (x *singleton) stopInstance() {
	n := x.s.n
	res, err := n.system.Root.RequestFuture(n.sup, &capsulePIDs{id: x.id}, 5*time.Second).Result()
	if err != nil {
		x.log.Error().Err(err).Msg("cannot find the singleton's actors to stop them")
		return
	}
	pids, _ := res.([]*actor.PID)
	for _, pid := range pids {
		if err := n.system.Root.StopFuture(pid).Wait(); err != nil {
			x.log.Warn().Err(err).Str("pid", pid.Id).Msg("singleton actor stop")
		}
	}
}

// capsulePIDs asks the supervisor for the actors of one capsule: the
// serving generation and a pending upgrade, if any.
type capsulePIDs struct{ id string }

// pidsOf answers capsulePIDs.
func (s *supervisorActor) pidsOf(ctx actor.Context, m *capsulePIDs) {
	var out []*actor.PID
	if c := s.capsules[m.id]; c != nil && c.pid != nil {
		out = append(out, c.pid)
	}
	if p := s.pending[m.id]; p != nil && p.pid != nil {
		out = append(out, p.pid)
	}
	ctx.Respond(out)
}

// withStandby reports the singletons this node is standby for with
// StateStandby, in place of the supervisor's "stopped" for a capsule this
// node ran before losing its lease.
func (n *Node) withStandby(list []CapsuleInfo) []CapsuleInfo {
	if n.single == nil {
		return list
	}
	sb := n.single.standby()
	for i := range list {
		if _, ok := sb[list[i].ID]; ok {
			list[i].State = StateStandby
			delete(sb, list[i].ID)
		}
	}
	for id, v := range sb {
		list = append(list, CapsuleInfo{ID: id, Version: v, State: StateStandby})
	}
	return list
}
