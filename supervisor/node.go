package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/actors"
	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/manifests"
)

// Config configures a Node. The zero value runs an embedded NATS server on
// bus.DefaultListen with data under ./astrid-data.
type Config struct {
	// DataDir holds JetStream data, the compilation cache and node state.
	DataDir string
	// NATSURL connects to an existing NATS server or cluster instead of
	// starting an embedded one.
	NATSURL string
	// NATSListen is the embedded server's client address ("" = default,
	// "none" = in-process only).
	NATSListen string
	// NodeID names the node in events, heartbeats and leases, and is the
	// embedded NATS server's name: 1 to 64 of [A-Za-z0-9_-]. Default: the
	// id in DataDir/node.id, generated ("node-" + 8 hex digits) and saved
	// there the first time.
	NodeID string
	// Owner is the principal capsules are loaded for ("default").
	Owner string
	// Logger is the node's root logger.
	Logger zerolog.Logger
	// KVReplicas is the JetStream KV replica count (1 by default).
	KVReplicas int
	// CacheDir is the wazero compilation cache (default DataDir/cache/wazero).
	CacheDir string
	// KeyFile is a shared envelope-signing key for every node of a
	// cluster; empty means a key of this node's own (<data>/node.key), so
	// other nodes' messages decode as claimed.
	KeyFile string
	// SubjectPrefix puts every topic under this NATS subject prefix
	// (deployment isolation on a shared NATS); empty means none.
	SubjectPrefix string
	// File is the parsed node config file (astrid run --config); nil
	// means no node-wide defaults and one_for_one everywhere.
	File *FileConfig

	// Cluster (cluster.go, singleton.go).

	// Labels describe the node to the cluster (astrid run --label k=v);
	// they ride in its heartbeats.
	Labels map[string]string
	// HeartbeatInterval is how often the node publishes its heartbeat on
	// astrid.v1.node.<id>.heartbeat (DefaultHeartbeatInterval when 0).
	HeartbeatInterval time.Duration
	// ClusterName, ClusterListen and Routes make the embedded NATS server
	// a member of a NATS cluster (bus.ServerConfig); ClusterName defaults
	// to DefaultClusterName when either of the others is set. JetStream
	// then runs clustered with the node id as the server name.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// LeaseTTL is how long a singleton capsule's lease lasts without
	// renewal (DefaultLeaseTTL when 0); the holder renews every LeaseTTL/3.
	LeaseTTL time.Duration
	// JetStreamWait bounds how long Start waits for a clustered or
	// external JetStream to accept the KV buckets (DefaultJetStreamWait
	// when 0); a standalone embedded server is asked once.
	JetStreamWait time.Duration
}

// Node is one astrid node: the NATS connection (and embedded server), the
// wasm engine, the actor system with the supervisor and one actor per
// capsule, and the interceptor router.
//
// # Concurrency
//
// Start and Shutdown are called by one goroutine (cmd/astrid). Load,
// Reload, Upgrade and Deploy are serialized by a mutex (the control service
// calls them too); Capsules and the StartCapsule family are safe from any
// goroutine.
type Node struct {
	cfg    Config
	id     string
	log    zerolog.Logger
	server *bus.Server
	conn   *bus.Conn
	kv     *bus.KV
	engine *capsule.Engine
	system *actor.ActorSystem
	t      *actors.Transport
	router *actors.Router
	sup    *actor.PID
	order  []string // boot order, for reverse shutdown
	paths  []string // what Load was given, rescanned by Reload

	records  *records
	secrets  *FileSecrets
	elicitor *busElicitor
	profiles *FileProfiles
	config   *FileConfigStore
	kvq      *quotaKV
	logs     hoststate.LogSink
	fileLogs *FileLogs
	quotaLog sync.Map // "principal/capsule/quota" -> time.Time of the last event
	metrics  *Metrics
	cluster  *cluster    // heartbeats and peers (cluster.go)
	single   *singletons // singleton leases (singleton.go)

	// opMu serializes Load, Reload, Upgrade and Deploy (astrid run and the
	// control service call them from different goroutines).
	opMu sync.Mutex
	ctl  *control // the control service (control.go)
}

// Start brings up NATS, the engine and the supervisor. No capsule is
// loaded yet.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "astrid-data"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("supervisor: data dir: %w", err)
	}
	if cfg.NodeID == "" {
		id, err := loadNodeID(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.NodeID = id
	} else if !ValidNodeID(cfg.NodeID) {
		return nil, fmt.Errorf("supervisor: node id %q: use 1 to 64 of [A-Za-z0-9_-]", cfg.NodeID)
	}
	clustered := cfg.ClusterListen != "" || len(cfg.Routes) > 0 || cfg.ClusterName != ""
	if clustered && cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, log: cfg.Logger.With().Str("node", cfg.NodeID).Logger(), metrics: newMetrics()}
	ok := false
	defer func() {
		if !ok {
			n.closeInfra()
		}
	}()
	key, err := nodeKey(cfg.DataDir, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	stamper, err := bus.NewStamper(key, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	if cfg.NATSURL == "" {
		listen := cfg.NATSListen
		switch listen {
		case "":
			listen = bus.DefaultListen
		case "none":
			listen = ""
		}
		n.server, err = bus.StartServer(bus.ServerConfig{
			DataDir: cfg.DataDir, Listen: listen, ServerName: cfg.NodeID, JetStream: true,
			ClusterName: cfg.ClusterName, ClusterListen: cfg.ClusterListen, Routes: cfg.Routes,
		}, n.log.With().Str("component", "nats").Logger())
		if err != nil {
			return nil, err
		}
		n.conn, err = bus.ConnectInProcess(n.server, "astrid-"+cfg.NodeID, n.log, bus.WithStamper(stamper), bus.WithSubjects(bus.Subjects{Prefix: cfg.SubjectPrefix}))
	} else {
		n.conn, err = bus.Connect(ctx, cfg.NATSURL, "astrid-"+cfg.NodeID, n.log, bus.WithStamper(stamper),
			bus.WithSubjects(bus.Subjects{Prefix: cfg.SubjectPrefix}))
	}
	if err != nil {
		return nil, err
	}
	jsWait := cmp.Or(cfg.JetStreamWait, DefaultJetStreamWait)
	if cfg.NATSURL == "" && !clustered {
		jsWait = 0 // a standalone embedded server is ready or never will be
	}
	n.kv, err = waitJetStream(ctx, n.log, jsWait, bus.DefaultKVBucket, func(ctx context.Context) (*bus.KV, error) {
		return bus.OpenKV(ctx, n.conn, bus.KVConfig{Replicas: cfg.KVReplicas})
	})
	if err != nil {
		return nil, err
	}
	leases, err := waitJetStream(ctx, n.log, jsWait, bus.DefaultLeaseBucket, func(ctx context.Context) (*bus.Leases, error) {
		return bus.OpenLeases(ctx, n.conn, bus.LeaseConfig{Replicas: cfg.KVReplicas})
	})
	if err != nil {
		return nil, err
	}
	n.t = actors.NewTransport(n.conn)
	if n.records, err = openRecords(cfg.DataDir); err != nil {
		return nil, err
	}
	if n.secrets, err = NewFileSecrets(filepath.Join(cfg.DataDir, "secrets")); err != nil {
		return nil, err
	}
	if n.profiles, err = NewFileProfiles(filepath.Join(cfg.DataDir, "profiles")); err != nil {
		return nil, err
	}
	n.config = NewFileConfigStore(filepath.Join(cfg.DataDir, "config"))
	if n.fileLogs, err = NewFileLogs(filepath.Join(cfg.DataDir, LogsDir), n.profiles.Known); err != nil {
		return nil, err
	}
	n.logs = n.fileLogs
	n.kvq = &quotaKV{KV: n.kv, profiles: n.profiles, onQuota: n.quotaExceeded, ns: map[string]*nsUsage{}}
	n.elicitor = &busElicitor{t: n.t, config: n.config, log: n.log.With().Str("component", "elicit").Logger()}
	if cfg.File != nil {
		n.elicitor.answers = cfg.File.Answers
	}
	n.engine, err = capsule.NewEngine(capsule.EngineConfig{
		CacheDir: cmp.Or(cfg.CacheDir, filepath.Join(cfg.DataDir, "cache", "wazero")),
		Logger:   n.log,
	})
	if err != nil {
		return nil, err
	}
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(actors.SlogBridge(n.log)))
	n.router = actors.NewRouter(n.t, n.system.Root, n.log)
	n.router.SetTenancy(n.profiles, n.quotaExceeded)
	sa := &supervisorActor{node: n, log: n.log.With().Str("component", "supervisor").Logger(),
		capsules: map[string]*child{}, byPID: map[string]*child{}, pending: map[string]*child{}}
	n.sup, err = n.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return sa },
		actor.WithSupervisor(actorPanics(sa.log))), "supervisor")
	if err != nil {
		return nil, fmt.Errorf("supervisor: spawn: %w", err)
	}
	n.startSingletons(leases)
	if err := n.startCluster(); err != nil {
		return nil, err
	}
	if err := n.startControl(); err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// ID returns the node id.
func (n *Node) ID() string { return n.id }

// ClientURL returns the NATS URL outside tools should use.
func (n *Node) ClientURL() string {
	if n.server != nil {
		return n.server.ClientURL()
	}
	return n.cfg.NATSURL
}

// Conn returns the node's NATS connection.
func (n *Node) Conn() *bus.Conn { return n.conn }

// Engine returns the node's wasm engine.
func (n *Node) Engine() *capsule.Engine { return n.engine }

func (n *Node) publishEvent(topic string, body []byte) {
	if err := n.t.Publish(&bus.Message{Topic: topic, Payload: body, Attribution: bus.System, Origin: bus.OriginSystem}); err != nil {
		n.log.Debug().Err(err).Str("topic", topic).Msg("event not published")
	}
}

// LoadReport says what Load did.
type LoadReport struct {
	// Loaded lists the capsules started, in boot order.
	Loaded []string
	// Failed maps a capsule id (or manifest path) to why it did not load.
	Failed map[string]error
	// NotReady lists capsules not ready within their readiness timeout.
	NotReady []string
	// Order is the boot order; Cycle the members of a dependency cycle.
	Order, Cycle []string
}

// Load discovers capsules under paths (a Capsule.toml, a capsule dir or a
// dir of capsule dirs), compiles them, and starts them in dependency order:
// a capsule starts only when every capsule it imports from is ready (or
// its readiness timeout passed). A capsule that fails to load is reported
// and skipped; the others still start. Load returns when every capsule is
// ready or its readiness timeout has passed.
func (n *Node) Load(ctx context.Context, paths ...string) (*LoadReport, error) {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	return n.load(ctx, n.ctl.withDeployed(paths)...)
}

func (n *Node) load(ctx context.Context, paths ...string) (*LoadReport, error) {
	rep := &LoadReport{Failed: map[string]error{}}
	for _, p := range paths {
		if !slices.Contains(n.paths, p) {
			n.paths = append(n.paths, p)
		}
	}
	var files []string
	for _, p := range paths {
		found, err := manifests.Discover(p)
		if err != nil {
			return nil, err
		}
		files = append(files, found...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("supervisor: no Capsule.toml under %s", strings.Join(paths, ", "))
	}
	seen := map[string]string{}
	var ms []*manifests.Manifest
	byID := map[string]*candidate{}
	for _, f := range files {
		m, diags, err := manifests.Load(f)
		for _, d := range diags {
			n.log.Warn().Str("manifest", f).Msg(d.String())
		}
		if err != nil {
			rep.Failed[f] = err
			continue
		}
		if m, err = n.cfg.File.apply(m); err != nil {
			rep.Failed[f] = err
			continue
		}
		id := m.ID()
		if prev, dup := seen[id]; dup {
			n.log.Warn().Str("capsule", id).Str("first", prev).Str("skipped", f).Msg("duplicate capsule id; first wins")
			continue
		}
		seen[id] = f
		c, err := n.compile(ctx, f, m)
		if err == nil {
			c, err = n.lifecycle(ctx, c)
		}
		if err != nil {
			rep.Failed[id] = err
			n.log.Error().Err(err).Str("capsule", id).Msg("capsule not loaded")
			continue
		}
		ms = append(ms, c.m)
		byID[id] = c
	}
	g := BuildGraph(ms)
	if len(g.Cycle) > 0 {
		n.log.Error().Strs("cycle", g.Cycle).Msg("dependency cycle; booting its members in discovery order")
	}
	for id, miss := range g.Unsatisfied {
		n.log.Warn().Str("capsule", id).Strs("imports", miss).Msg("imports nobody provides; loading anyway")
	}
	ready := map[string]chan struct{}{}
	wait := func(id string, d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ready[id]:
			return true
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	for _, id := range g.Order {
		for _, dep := range g.Deps[id] {
			if !wait(dep, byID[dep].m.Supervision.ReadinessTimeout) {
				n.log.Warn().Str("capsule", id).Str("dependency", dep).Msg("dependency not ready; starting anyway")
			}
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		l := byID[id]
		ready[id] = make(chan struct{})
		sp := &spawn{cfg: actors.CapsuleConfig{
			Manifest: l.m, Module: l.mod, Transport: n.t, Router: n.router,
			Logger: n.log, Owner: n.cfg.Owner, Env: defaultEnv(l.m), Tenancy: n.tenancy(),
		}, group: n.cfg.File.groupOf(id), graph: &g, ready: ready[id]}
		if l.m.Supervision.Singleton && n.single != nil {
			n.single.add(sp) // spawned only while this node holds its lease
		} else {
			n.system.Root.Send(n.sup, sp)
		}
		n.order = append(n.order, id)
		rep.Loaded = append(rep.Loaded, id)
		if missing := n.missingConfig(l.m, n.owner()); len(missing) > 0 {
			body, _ := json.Marshal(Onboarding{CapsuleID: id, Principal: n.owner(), Fields: missing})
			n.publishEvent(OnboardingTopic, body)
			names := make([]string, len(missing))
			for i, f := range missing {
				names[i] = f.Key
			}
			n.log.Warn().Str("capsule", id).Strs("missing", names).Msg("capsule needs configuration; loaded anyway")
		}
	}
	for _, id := range g.Order {
		if !wait(id, byID[id].m.Supervision.ReadinessTimeout) {
			rep.NotReady = append(rep.NotReady, id)
			n.log.Warn().Str("capsule", id).Msg("capsule not ready within its readiness timeout")
		}
	}
	rep.Order = g.Order
	rep.Cycle = g.Cycle
	return rep, ctx.Err()
}

func (n *Node) compile(ctx context.Context, file string, m *manifests.Manifest) (*candidate, error) {
	if len(m.Components) == 0 {
		return nil, fmt.Errorf("capsule %s: no [[component]] with a wasm file", m.ID())
	}
	wasmPath := filepath.Join(filepath.Dir(file), m.Components[0].File)
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, fmt.Errorf("capsule %s: %w (build it with `make examples`)", m.ID(), err)
	}
	mb, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	pages := min(m.Limits.MemoryPages, n.profiles.Profile(n.owner()).MemoryPages)
	mod, err := n.engine.Compile(ctx, wasm, pages)
	if err != nil {
		return nil, fmt.Errorf("capsule %s: %w", m.ID(), err)
	}
	n.log.Debug().Str("capsule", m.ID()).Str("wasm_hash", mod.Hash()[:12]).Dur("elapsed", time.Since(start)).Msg("compiled")
	return &candidate{file: file, m: m, mod: mod, wasm: wasm, manifest: mb}, nil
}

// defaultEnv resolves [env] defaults of non-secret keys to strings.
func defaultEnv(m *manifests.Manifest) map[string]string {
	env := map[string]string{}
	for _, e := range m.Env {
		if e.Type == "secret" || e.Default == nil {
			continue
		}
		switch v := e.Default.(type) {
		case string:
			env[e.Name] = v
		default:
			env[e.Name] = fmt.Sprint(v)
		}
	}
	return env
}

// Capsules lists the capsules and their states.
func (n *Node) Capsules(timeout time.Duration) ([]CapsuleInfo, error) {
	res, err := n.system.Root.RequestFuture(n.sup, &list{}, timeout).Result()
	if err != nil {
		return nil, err
	}
	out, _ := res.([]CapsuleInfo)
	out = n.withStandby(out)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Shutdown stops the capsules in reverse boot order, each cancelled and
// waited for within ctx, then closes the engine, NATS and the server.
func (n *Node) Shutdown(ctx context.Context) error {
	var errs []error
	if err := n.stopControl(ctx); err != nil {
		errs = append(errs, err)
	}
	n.single.close() // held singletons stop first and release their leases
	res, err := n.system.Root.RequestFuture(n.sup, &pids{}, 5*time.Second).Result()
	if err != nil {
		errs = append(errs, fmt.Errorf("list capsules: %w", err))
	}
	list, _ := res.([]*actor.PID)
	for i := len(list) - 1; i >= 0; i-- {
		if err := n.system.Root.StopFuture(list[i]).Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", list[i].Id, err))
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	n.cluster.close() // heartbeats stop; peers are told the node left
	n.router.Close()
	_ = n.system.Root.StopFuture(n.sup).Wait()
	n.system.Shutdown()
	errs = append(errs, n.closeInfra())
	return errors.Join(errs...)
}

func (n *Node) closeInfra() error {
	var errs []error
	if n.fileLogs != nil {
		errs = append(errs, n.fileLogs.Close())
	}
	if n.engine != nil {
		errs = append(errs, n.engine.Close(context.Background()))
	}
	if n.conn != nil {
		n.conn.Close()
	}
	if n.server != nil {
		n.server.Shutdown()
	}
	return errors.Join(errs...)
}

// nodeKey loads (or creates, 0600) the key that signs this node's message
// envelopes, so messages stamped before a restart still verify. keyFile,
// when set, is a key shared by every node of a cluster (each node then
// trusts the others' verified attributions); it must exist.
func nodeKey(dir, keyFile string) ([]byte, error) {
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("supervisor: envelope key: %w", err)
		}
		if len(b) < bus.MinKeyBytes {
			return nil, fmt.Errorf("supervisor: envelope key %s: at least %d bytes", keyFile, bus.MinKeyBytes)
		}
		return b, nil
	}
	p := filepath.Join(dir, "node.key")
	if b, err := os.ReadFile(p); err == nil && len(b) >= bus.MinKeyBytes {
		return b, nil
	}
	key, err := bus.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, key, 0o600); err != nil {
		return nil, fmt.Errorf("supervisor: node key: %w", err)
	}
	return key, nil
}

// SetFileConfig sets the node config file's defaults, groups and elicit
// answers for capsules loaded after the call.
func (n *Node) SetFileConfig(fc *FileConfig) {
	n.cfg.File = fc
	if fc != nil {
		n.elicitor.answers = fc.Answers
	}
}

// Secrets returns the node's secret store.
func (n *Node) Secrets() *FileSecrets { return n.secrets }

// ReloadReport says what Reload did.
type ReloadReport struct {
	// Upgraded lists capsules now serving a new version.
	Upgraded []string
	// Added lists capsules that were not running before.
	Added []string
	// Failed maps a capsule to why its new version is not serving (the old
	// version, if any, still is).
	Failed map[string]error
}

// Reload rescans the paths given to Load (astrid run does it on SIGHUP)
// and hot-upgrades every capsule whose binary or version changed: the new
// version runs its upgrade hook in a one-shot instance, starts beside the
// old one, and takes over the traffic only once it is ready; until then the
// old version keeps serving, and if anything fails it simply stays. Each
// message is handled by exactly one of the two. New capsules are loaded.
func (n *Node) Reload(ctx context.Context) (*ReloadReport, error) {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	return n.upgradeFrom(ctx, n.ctl.rescanPaths(n.paths), true)
}

// upgradeFrom hot-upgrades the changed capsules found under paths and loads
// the new ones. On a rescan, a capsule last upgraded or deployed from
// another directory through the control service is looked for there only.
func (n *Node) upgradeFrom(ctx context.Context, paths []string, rescan bool) (*ReloadReport, error) {
	rep := &ReloadReport{Failed: map[string]error{}}
	var fresh []string
	for _, p := range paths {
		files, err := manifests.Discover(p)
		if err != nil {
			return rep, err
		}
		for _, f := range files {
			m, _, err := manifests.Load(f)
			if err != nil {
				rep.Failed[f] = err
				continue
			}
			if m, err = n.cfg.File.apply(m); err != nil {
				rep.Failed[f] = err
				continue
			}
			id := m.ID()
			if rescan && n.ctl.elsewhere(id, f) {
				continue
			}
			if !slices.Contains(n.order, id) {
				fresh = append(fresh, filepath.Dir(f))
				continue
			}
			c, err := n.compile(ctx, f, m)
			if err != nil {
				rep.Failed[id] = err
				continue
			}
			changed, err := n.runLifecycleHook(ctx, c)
			if err != nil {
				rep.Failed[id] = err
				continue
			}
			if !changed {
				continue
			}
			if standby, ok := n.single.template(id, actors.CapsuleConfig{
				Manifest: c.m, Module: c.mod, Transport: n.t, Router: n.router,
				Logger: n.log, Owner: n.cfg.Owner, Env: defaultEnv(c.m), Tenancy: n.tenancy(),
			}); ok && standby {
				// Not running here: the new version starts if this node
				// takes the singleton's lease.
				if err := n.commit(c); err != nil {
					rep.Failed[id] = err
					continue
				}
				rep.Upgraded = append(rep.Upgraded, id)
				continue
			}
			done := make(chan error, 1)
			n.system.Root.Send(n.sup, &upgrade{cfg: actors.CapsuleConfig{
				Manifest: c.m, Module: c.mod, Transport: n.t, Router: n.router,
				Logger: n.log, Owner: n.cfg.Owner, Env: defaultEnv(c.m), Tenancy: n.tenancy(),
			}, done: done})
			select {
			case err = <-done:
			case <-ctx.Done():
				return rep, ctx.Err()
			}
			if err != nil {
				rep.Failed[id] = err
				continue
			}
			if err := n.commit(c); err != nil {
				rep.Failed[id] = err
				continue
			}
			rep.Upgraded = append(rep.Upgraded, id)
		}
	}
	if len(fresh) > 0 {
		lr, err := n.load(ctx, fresh...)
		if err != nil {
			return rep, err
		}
		rep.Added = lr.Loaded
		maps.Copy(rep.Failed, lr.Failed)
	}
	return rep, nil
}

func (n *Node) owner() string { return cmp.Or(n.cfg.Owner, bus.DefaultPrincipal) }

// tenancy is what every capsule of the node shares for per-principal
// isolation: secrets, stored config, quota profiles, quota-aware KV and
// per-principal logs.
func (n *Node) tenancy() actors.Tenancy {
	return actors.Tenancy{KV: n.kvq, Secrets: n.secrets, Config: n.config, Profiles: n.profiles,
		Logs: n.logs, OnQuota: n.quotaExceeded,
		OnDeadLetter: func(capsule string) { n.metrics.deadLetters.WithLabelValues(capsule).Inc() }}
}

// QuotaTopic carries quota refusals (at most one event per principal,
// capsule and quota per second).
const QuotaTopic = "astrid.v1.quota.exceeded"

func (n *Node) quotaExceeded(ev hoststate.QuotaEvent) {
	n.metrics.quota.WithLabelValues(ev.Capsule, ev.Principal, ev.Quota).Inc()
	key := ev.Principal + "/" + ev.Capsule + "/" + ev.Quota
	now := time.Now()
	if last, ok := n.quotaLog.Load(key); ok && now.Sub(last.(time.Time)) < time.Second {
		return
	}
	n.quotaLog.Store(key, now)
	body, _ := json.Marshal(ev)
	n.publishEvent(QuotaTopic, body)
	n.log.Warn().Str("capsule", ev.Capsule).Str("principal", ev.Principal).Str("quota", ev.Quota).
		Int64("limit", ev.Limit).Msg("quota exceeded")
}
