package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultLeaseBucket is the JetStream KV bucket OpenLeases uses when
// LeaseConfig.Bucket is empty.
const DefaultLeaseBucket = "astrid_leases"

// LeaseConfig configures the lease bucket.
type LeaseConfig struct {
	// Bucket is the JetStream KV bucket name; "" means DefaultLeaseBucket.
	Bucket string
	// Replicas is the bucket's replica count in a cluster; 0 means 1.
	Replicas int
	// Storage is file (the zero value) or memory.
	Storage jetstream.StorageType
}

// Lease is one entry of the lease bucket: who holds the key and until when
// (by the holder's clock), at which revision. The revision is the fencing
// token: every write of the key (take, renew, release) gets a larger one,
// and a conditional write at a stale revision fails.
type Lease struct {
	// Key is the leased name (a capsule id).
	Key string `json:"-"`
	// Holder is the node id holding the lease.
	Holder string `json:"holder"`
	// Expires is when the lease ends unless renewed, by the holder's clock
	// (informational: takeover decisions should not compare clocks).
	Expires time.Time `json:"expires"`
	// Revision is the JetStream revision of this entry.
	Revision uint64 `json:"-"`
	// Deleted is set for a released (deleted) lease; Holder and Expires
	// are then empty.
	Deleted bool `json:"-"`
}

// Leases is a JetStream KV bucket of leases written only with conditional
// operations: Create (the key must be absent or deleted), Update and
// Delete at an expected revision. JetStream orders the writes of a key
// through its stream leader, so of two nodes writing at the same revision
// exactly one succeeds; the loser gets ErrCASMismatch.
//
// # Concurrency
//
// Safe for concurrent use. Watch runs one goroutine per watch until it is
// stopped.
type Leases struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	nc     *nats.Conn
	stream string
}

// OpenLeases creates the lease bucket, or updates its configuration if it
// exists (history 1).
func OpenLeases(ctx context.Context, c *Conn, cfg LeaseConfig) (*Leases, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultLeaseBucket
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "astrid singleton leases",
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: open leases %s: %w", cfg.Bucket, err)
	}
	return &Leases{kv: kv, js: c.js, nc: c.nc, stream: "KV_" + cfg.Bucket}, nil
}

// StepDownFrom asks the bucket's stream leader to step down if it is the
// NATS server named server, and reports whether it asked. A lease holder
// calls it with its own server's name: if the holder's process dies, the
// lease bucket then keeps its leader and another node can take the lease
// as soon as it expires, instead of also waiting for a leader election
// (several seconds). Without a cluster it does nothing.
func (l *Leases) StepDownFrom(ctx context.Context, server string) (bool, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := l.js.Stream(ctx, l.stream)
	if err != nil {
		return false, fmt.Errorf("bus: lease stream info: %w", err)
	}
	ci := s.CachedInfo().Cluster
	if ci == nil || ci.Leader != server || len(ci.Replicas) == 0 {
		return false, nil
	}
	resp, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+l.stream, nil)
	if err != nil {
		return false, fmt.Errorf("bus: lease stream step down: %w", err)
	}
	var r struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(resp.Data, &r) == nil && r.Error != nil {
		return false, fmt.Errorf("bus: lease stream step down: %s", r.Error.Description)
	}
	return true, nil
}

// leaseKey escapes a lease name into one KV key token.
func leaseKey(name string) (string, error) {
	if err := checkKey(name, false); err != nil {
		return "", err
	}
	return string(escapeAppend(nil, name)), nil
}

// wrongRevision reports whether err is JetStream's answer to a write at a
// stale expected revision.
func wrongRevision(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func leaseErr(op, name string, err error) error {
	if wrongRevision(err) {
		return fmt.Errorf("%w: lease %s %s: %w", ErrCASMismatch, op, name, err)
	}
	return fmt.Errorf("bus: lease %s %s: %w", op, name, err)
}

func entryLease(name string, e jetstream.KeyValueEntry) Lease {
	l := Lease{Key: name, Revision: e.Revision()}
	if e.Operation() != jetstream.KeyValuePut {
		l.Deleted = true
		return l
	}
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		// Not written by this package: report it as held by nobody
		// known, still fenced by its revision.
		l.Holder = ""
	}
	return l
}

// Get returns the current lease of name, or ErrKeyNotFound when there is
// none (never written, or released).
func (l *Leases) Get(ctx context.Context, name string) (Lease, error) {
	key, err := leaseKey(name)
	if err != nil {
		return Lease{}, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := l.kv.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return Lease{}, ErrKeyNotFound
		}
		return Lease{}, leaseErr("get", name, err)
	}
	return entryLease(name, e), nil
}

// Create takes the lease of name for holder until expires if nobody holds
// it (the key is absent or released) and returns the new lease; otherwise
// ErrCASMismatch.
func (l *Leases) Create(ctx context.Context, name, holder string, expires time.Time) (Lease, error) {
	key, err := leaseKey(name)
	if err != nil {
		return Lease{}, err
	}
	out := Lease{Key: name, Holder: holder, Expires: expires.UTC()}
	val, _ := json.Marshal(out)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	rev, err := l.kv.Create(ctx, key, val)
	if err != nil {
		return Lease{}, leaseErr("create", name, err)
	}
	out.Revision = rev
	return out, nil
}

// Update writes the lease of name for holder until expires if its current
// revision is rev (a renewal by the holder, or a takeover of a lease seen
// expired at rev) and returns the new lease; otherwise ErrCASMismatch.
func (l *Leases) Update(ctx context.Context, name, holder string, expires time.Time, rev uint64) (Lease, error) {
	key, err := leaseKey(name)
	if err != nil {
		return Lease{}, err
	}
	out := Lease{Key: name, Holder: holder, Expires: expires.UTC()}
	val, _ := json.Marshal(out)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	nrev, err := l.kv.Update(ctx, key, val, rev)
	if err != nil {
		return Lease{}, leaseErr("update", name, err)
	}
	out.Revision = nrev
	return out, nil
}

// Delete releases the lease of name if its current revision is rev;
// otherwise ErrCASMismatch (someone else holds it now).
func (l *Leases) Delete(ctx context.Context, name string, rev uint64) error {
	key, err := leaseKey(name)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := l.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return leaseErr("delete", name, err)
	}
	return nil
}

// Watch calls fn with the current lease of name (if any) and then with
// every change (Deleted set for a release), in revision order, from one
// goroutine, until stop is called or ctx ends. fn must not block for long.
// The goroutine (re)creates the underlying JetStream watcher itself,
// retrying every second while JetStream cannot serve it, so Watch never
// blocks and only fails for an invalid name; after a re-creation fn sees
// the current lease again. stop waits for the goroutine; it is idempotent
// and must not be called from fn.
func (l *Leases) Watch(ctx context.Context, name string, fn func(Lease)) (stop func(), err error) {
	key, err := leaseKey(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			l.watchOnce(ctx, key, name, fn)
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}

// watchOnce runs one JetStream watcher until it closes or ctx ends.
func (l *Leases) watchOnce(ctx context.Context, key, name string, fn func(Lease)) {
	w, err := l.kv.Watch(ctx, key)
	if err != nil {
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // initial values delivered
			}
			fn(entryLease(name, e))
		}
	}
}
