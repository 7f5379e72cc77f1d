package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
)

// Cluster defaults.
const (
	// DefaultHeartbeatInterval is how often a node publishes its heartbeat.
	DefaultHeartbeatInterval = 5 * time.Second
	// GoneAfter is how many heartbeat intervals (the peer's own) a peer may
	// stay silent before it is reported gone.
	GoneAfter = 3
	// DefaultLeaseTTL is how long a singleton lease lasts without renewal.
	DefaultLeaseTTL = 6 * time.Second
	// DefaultJetStreamWait bounds how long Start waits for a clustered
	// JetStream (meta leader elected, enough peers for the replicas).
	DefaultJetStreamWait = 2 * time.Minute
	// DefaultClusterName is the NATS cluster name when routes or a cluster
	// listener are given without one.
	DefaultClusterName = "astrid"
)

// NodeTopicPrefix starts the topics of node events:
// astrid.v1.node.<id>.heartbeat and astrid.v1.node.<id>.gone.
const NodeTopicPrefix = "astrid.v1.node."

// HeartbeatTopic is the topic node id publishes its heartbeat on.
func HeartbeatTopic(id string) string { return NodeTopicPrefix + id + ".heartbeat" }

// GoneTopic is the topic on which node id is reported gone.
func GoneTopic(id string) string { return NodeTopicPrefix + id + ".gone" }

// Heartbeat is the JSON body of astrid.v1.node.<id>.heartbeat: the node's
// identity and inventory.
type Heartbeat struct {
	Node    string            `json:"node"`
	Labels  map[string]string `json:"labels,omitempty"`
	Started time.Time         `json:"started"`
	Time    time.Time         `json:"time"`
	// NATS is the client URL of the node's embedded server (or the URL it
	// joined with --nats).
	NATS string `json:"nats,omitempty"`
	// IntervalMs is the node's heartbeat interval: peers report it gone
	// after GoneAfter intervals of silence.
	IntervalMs int64 `json:"interval_ms"`
	// Capsules is the node's inventory (Node.Capsules).
	Capsules []CapsuleInfo `json:"capsules"`
}

// NodeGone is the JSON body of astrid.v1.node.<id>.gone. Every node that
// notices the silence publishes it once (DetectedBy names it); a node
// shutting down cleanly announces itself with Reason "shutdown".
type NodeGone struct {
	Node       string    `json:"node"`
	LastSeen   time.Time `json:"last_seen"`
	DetectedBy string    `json:"detected_by"`
	Reason     string    `json:"reason"`
	Time       time.Time `json:"time"`
}

// PeerInfo is one node of the cluster as this node sees it, from its
// heartbeats (this node included, with Self set).
type PeerInfo struct {
	ID       string            `json:"id"`
	Labels   map[string]string `json:"labels,omitempty"`
	NATS     string            `json:"nats,omitempty"`
	Started  time.Time         `json:"started"`
	Interval time.Duration     `json:"interval"`
	// LastSeen is when this node last received the peer's heartbeat (by
	// this node's clock).
	LastSeen time.Time `json:"last_seen"`
	// Gone is set once the peer missed GoneAfter intervals or announced
	// its shutdown; a heartbeat clears it.
	Gone     bool          `json:"gone"`
	GoneAt   time.Time     `json:"gone_at,omitzero"`
	Self     bool          `json:"self,omitempty"`
	Capsules []CapsuleInfo `json:"capsules"`
}

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidNodeID reports whether id can name a node: 1 to 64 of
// [A-Za-z0-9_-] (it is a topic segment and the NATS server name).
func ValidNodeID(id string) bool { return nodeIDRe.MatchString(id) }

// loadNodeID returns the node id persisted in <dir>/node.id, generating
// and saving "node-" + 8 random hex digits the first time.
func loadNodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node.id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); ValidNodeID(id) {
			return id, nil
		}
	}
	var buf [4]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("supervisor: node id: %w", err)
	}
	id := "node-" + hex.EncodeToString(buf[:])
	if err := writeAtomic(p, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("supervisor: node id: %w", err)
	}
	return id, nil
}

// waitJetStream calls open until it succeeds, with backoff, for at most
// limit (one attempt when limit <= 0): a clustered JetStream refuses
// requests until its meta leader is elected and enough servers joined for
// the replicas asked for.
func waitJetStream[T any](ctx context.Context, log zerolog.Logger, limit time.Duration, what string, open func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := open(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info().Str("bucket", what).Dur("waited", time.Since(start)).Msg("jetstream ready")
			}
			return v, nil
		}
		if ctx.Err() != nil || time.Since(start)+backoff > limit {
			if limit <= 0 {
				return v, err
			}
			return v, fmt.Errorf("supervisor: %s: jetstream not ready after %v: %w", what, time.Since(start).Round(time.Second), err)
		}
		log.Info().Err(err).Str("bucket", what).Int("attempt", attempt).Dur("retry_in", backoff).
			Msg("waiting for jetstream: a clustered jetstream needs its meta leader and as many servers as kv replicas")
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return v, ctx.Err()
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// peerTable is the node's view of the cluster, fed by heartbeats. It
// takes the time as an argument so tests can drive it with their own
// clock.
//
// # Concurrency
//
// Guarded by mu; safe from any goroutine.
type peerTable struct {
	mu    sync.Mutex
	self  string
	def   time.Duration // interval assumed for a peer that did not say
	peers map[string]*PeerInfo
}

func newPeerTable(self string, def time.Duration) *peerTable {
	return &peerTable{self: self, def: def, peers: map[string]*PeerInfo{}}
}

// observe records a heartbeat received at now and reports whether the
// peer was gone (it is back).
func (pt *peerTable) observe(hb Heartbeat, now time.Time) (back bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	p := pt.peers[hb.Node]
	if p == nil {
		p = &PeerInfo{ID: hb.Node}
		pt.peers[hb.Node] = p
	}
	back = p.Gone
	p.Labels, p.NATS, p.Started, p.Capsules = hb.Labels, hb.NATS, hb.Started, hb.Capsules
	p.Interval = time.Duration(hb.IntervalMs) * time.Millisecond
	if p.Interval <= 0 {
		p.Interval = pt.def
	}
	p.LastSeen, p.Gone, p.GoneAt = now, false, time.Time{}
	p.Self = hb.Node == pt.self
	return back
}

// sweep marks gone, and returns, every peer silent for GoneAfter of its
// intervals at now that was not gone yet. This node is never gone.
func (pt *peerTable) sweep(now time.Time) []PeerInfo {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	var out []PeerInfo
	for _, p := range pt.peers {
		if p.Gone || p.Self || now.Sub(p.LastSeen) < GoneAfter*p.Interval {
			continue
		}
		p.Gone, p.GoneAt = true, now
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// markGone marks id gone at now (its own shutdown announcement); false if
// it was unknown or already gone.
func (pt *peerTable) markGone(id string, now time.Time) bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	p := pt.peers[id]
	if p == nil || p.Gone {
		return false
	}
	p.Gone, p.GoneAt = true, now
	return true
}

// list returns a copy of every peer, sorted by id.
func (pt *peerTable) list() []PeerInfo {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	out := make([]PeerInfo, 0, len(pt.peers))
	for _, p := range pt.peers {
		cp := *p
		cp.Labels = maps.Clone(p.Labels)
		cp.Capsules = slices.Clone(p.Capsules)
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// cluster publishes this node's heartbeats and keeps the peer table.
//
// # Concurrency
//
// One goroutine (beat) publishes and sweeps; the subscription callback
// feeds the peer table. close stops both and waits.
type cluster struct {
	n        *Node
	log      zerolog.Logger
	interval time.Duration
	started  time.Time
	peers    *peerTable
	unsub    func()
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func (n *Node) startCluster() error {
	iv := n.cfg.HeartbeatInterval
	if iv <= 0 {
		iv = DefaultHeartbeatInterval
	}
	c := &cluster{n: n, log: n.log.With().Str("component", "cluster").Logger(), interval: iv,
		started: time.Now().UTC(), peers: newPeerTable(n.id, iv), stop: make(chan struct{}), done: make(chan struct{})}
	unsub, err := n.t.Subscribe(NodeTopicPrefix+"*", c.receive)
	if err != nil {
		return fmt.Errorf("supervisor: subscribe node events: %w", err)
	}
	c.unsub = unsub
	if err := n.t.Flush(); err != nil {
		unsub()
		return fmt.Errorf("supervisor: subscribe node events: %w", err)
	}
	n.cluster = c
	go c.beat()
	return nil
}

// receive handles astrid.v1.node.<id>.<verb> from any node.
func (c *cluster) receive(m *bus.Message) {
	rest, ok := strings.CutPrefix(m.Topic, NodeTopicPrefix)
	if !ok {
		return
	}
	id, verb, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	now := time.Now()
	switch verb {
	case "heartbeat":
		var hb Heartbeat
		if err := json.Unmarshal(m.Payload, &hb); err != nil || hb.Node != id {
			c.log.Debug().Str("topic", m.Topic).Msg("malformed heartbeat ignored")
			return
		}
		if c.peers.observe(hb, now) {
			c.log.Info().Str("peer", id).Msg("peer is back")
		}
	case "gone":
		var g NodeGone
		if json.Unmarshal(m.Payload, &g) != nil || g.Node != id || g.DetectedBy != id {
			return // another observer's report: we judge by our own clock
		}
		if c.peers.markGone(id, now) {
			c.log.Info().Str("peer", id).Str("reason", g.Reason).Msg("peer left")
		}
	}
}

func (c *cluster) beat() {
	defer close(c.done)
	beat := time.NewTicker(c.interval)
	defer beat.Stop()
	sweep := time.NewTicker(max(c.interval/20, 10*time.Millisecond))
	defer sweep.Stop()
	c.publish()
	for {
		select {
		case <-c.stop:
			return
		case <-beat.C:
			c.publish()
		case <-sweep.C:
			for _, p := range c.peers.sweep(time.Now()) {
				c.log.Warn().Str("peer", p.ID).Time("last_seen", p.LastSeen).Dur("interval", p.Interval).
					Msg("peer missed its heartbeats; reported gone")
				c.gone(NodeGone{Node: p.ID, LastSeen: p.LastSeen.UTC(), DetectedBy: c.n.id, Reason: "missed heartbeats"})
			}
		}
	}
}

func (c *cluster) gone(g NodeGone) {
	g.Time = time.Now().UTC()
	body, _ := json.Marshal(g)
	c.n.publishEvent(GoneTopic(g.Node), body)
}

func (c *cluster) publish() {
	caps, err := c.n.Capsules(min(c.interval, 2*time.Second))
	if err != nil {
		c.log.Debug().Err(err).Msg("heartbeat without inventory")
	}
	if caps == nil {
		caps = []CapsuleInfo{}
	}
	body, _ := json.Marshal(Heartbeat{Node: c.n.id, Labels: c.n.cfg.Labels, Started: c.started,
		Time: time.Now().UTC(), NATS: c.n.ClientURL(), IntervalMs: c.interval.Milliseconds(), Capsules: caps})
	c.n.publishEvent(HeartbeatTopic(c.n.id), body)
}

// close stops the heartbeats and announces the node's departure.
func (c *cluster) close() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.unsub()
		c.gone(NodeGone{Node: c.n.id, LastSeen: time.Now().UTC(), DetectedBy: c.n.id, Reason: "shutdown"})
		if err := c.n.t.Flush(); err != nil && !errors.Is(err, context.Canceled) {
			c.log.Debug().Err(err).Msg("flush after the departure notice")
		}
	})
}

// Peers returns the cluster as this node sees it, from the heartbeats it
// received: every node that beat at least once since this node started,
// this node included (Self), sorted by id. A node silent for GoneAfter of
// its intervals is listed with Gone set (and reported once on
// astrid.v1.node.<id>.gone). The control plane serves it as the node
// inventory. Safe from any goroutine; nil before Start completed.
func (n *Node) Peers() []PeerInfo {
	if n.cluster == nil {
		return nil
	}
	return n.cluster.peers.list()
}

// Labels returns the node's labels (astrid run --label k=v).
func (n *Node) Labels() map[string]string { return maps.Clone(n.cfg.Labels) }
