package supervisor

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/astrid-go/astrid/actors"
	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/manifests"
)

// The control service: a NATS micro service every node runs (docs/control.md).
const (
	// ControlService is the micro service name (`nats micro ls`).
	ControlService = "astrid-ctl"
	// ControlVersion is the version of the control API.
	ControlVersion = "1.0.0"
	// CapsuleBucket is the JetStream object store bucket `astrid deploy`
	// pushes capsule archives into.
	CapsuleBucket = "astrid_capsules"
	// DeployedDir is where a node unpacks deployed capsules, under its data
	// directory: <data>/deployed/<capsule>/.
	DeployedDir = "deployed"
)

// Control verbs: each is served on bus.ControlTopic(verb, node id) and
// bus.ControlTopic(verb, bus.ControlAll).
const (
	VerbPing    = "ping"
	VerbPs      = "ps"
	VerbStart   = "start"
	VerbStop    = "stop"
	VerbRestart = "restart"
	VerbUpgrade = "upgrade"
	VerbElicit  = "elicit"
	VerbDeploy  = "deploy"
)

// Control error codes (micro error replies, HTTP-like).
const (
	CodeBadRequest   = "400"
	CodeNotFound     = "404"
	CodeConflict     = "409"
	CodeInternal     = "500"
	CodeShuttingDown = "503"
	CodeTimeout      = "504"
)

// Control errors; the control service maps them to codes.
var (
	// ErrUnknownCapsule: no capsule of that id runs on the node (404).
	ErrUnknownCapsule = errors.New("supervisor: unknown capsule")
	// ErrCapsuleState: the capsule is in a state that forbids the
	// operation: stopping, stopped (for restart), being upgraded (409).
	ErrCapsuleState = errors.New("supervisor: capsule state forbids it")
	// ErrNotReady: a started capsule did not become ready in time (504).
	ErrNotReady = errors.New("supervisor: capsule not ready")
	// ErrInvalidRequest: a malformed control request or archive (400).
	ErrInvalidRequest = errors.New("supervisor: invalid control request")
	// ErrShuttingDown: the node is shutting down (503).
	ErrShuttingDown = errors.New("supervisor: node shutting down")
)

// ControlError is the JSON body of every control error reply.
type ControlError struct {
	Node  string `json:"node"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

// PingReply answers ping.
type PingReply struct {
	Node     string            `json:"node"`
	Labels   map[string]string `json:"labels,omitempty"`
	Started  time.Time         `json:"started"`
	UptimeMs int64             `json:"uptime_ms"`
	NATSURL  string            `json:"nats_url"`
	Version  string            `json:"version"`
	// Capsules and Ready count the node's capsules and the ready ones.
	Capsules int `json:"capsules"`
	Ready    int `json:"ready"`
	// Peers is the cluster as this node sees it from heartbeats (itself
	// included), with the nodes gone silent marked Gone.
	Peers []PeerInfo `json:"peers,omitempty"`
}

// PsReply answers ps.
type PsReply struct {
	Node     string        `json:"node"`
	Capsules []CapsuleInfo `json:"capsules"`
}

// CapsuleRequest is the body of start, stop and restart.
type CapsuleRequest struct {
	Capsule string `json:"capsule"`
}

// CapsuleReply answers start, stop and restart: the capsule after the
// operation; Changed is false when there was nothing to do (starting a
// running capsule, stopping a stopped one).
type CapsuleReply struct {
	Node    string      `json:"node"`
	Capsule CapsuleInfo `json:"capsule"`
	Changed bool        `json:"changed"`
}

// UpgradeRequest is the body of upgrade: a directory on the node (a
// capsule dir or a dir of capsule dirs).
type UpgradeRequest struct {
	Dir string `json:"dir"`
}

// UpgradeReply answers upgrade (and is the body of its error reply when
// some capsule failed).
type UpgradeReply struct {
	Node     string            `json:"node"`
	Upgraded []string          `json:"upgraded"`
	Added    []string          `json:"added"`
	Failed   map[string]string `json:"failed,omitempty"`
}

// ElicitAnswer is the body of elicit: the answer to a pending elicit
// request, for the principal the request was made for. Neither Value nor
// Values declines it.
type ElicitAnswer struct {
	RequestID string   `json:"request_id"`
	Principal string   `json:"principal"`
	Value     *string  `json:"value,omitempty"`
	Values    []string `json:"values,omitempty"`
}

// ElicitReply answers elicit.
type ElicitReply struct {
	Node      string `json:"node"`
	RequestID string `json:"request_id"`
	Topic     string `json:"topic"`
}

// DeployRequest is the body of deploy: the object store key `astrid
// deploy` pushed and a label selector (every pair must match the node's
// labels; empty selects every node).
type DeployRequest struct {
	BucketKey string            `json:"bucket_key"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// DeployReply answers deploy. Action is "loaded" (a new capsule),
// "upgraded" (hot upgrade), "unchanged" or "skipped" (labels do not match).
type DeployReply struct {
	Node    string `json:"node"`
	Capsule string `json:"capsule,omitempty"`
	Version string `json:"version,omitempty"`
	Dir     string `json:"dir,omitempty"`
	Action  string `json:"action"`
	Reason  string `json:"reason,omitempty"`
}

// control is a node's control service and the control-plane state of the
// node.
//
// # Concurrency
//
// Handlers run on the micro endpoints' goroutines; mu guards closed and
// the handler count; sources is guarded by the node's opMu.
type control struct {
	n       *Node
	svc     *bus.Service
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	// sources maps a capsule to the directory it was last upgraded or
	// deployed from through the control service; Reload looks for it
	// there, not in the directories it was first loaded from.
	sources map[string]string
	// deployedLoaded is set once the first Load included <data>/deployed.
	deployedLoaded bool
}

// startControl starts the control service on the node's connection.
func (n *Node) startControl() error {
	if strings.ContainsAny(n.id, ".*> \t") || n.id == bus.ControlAll {
		return fmt.Errorf("supervisor: node id %q cannot name control subjects (no dots, wildcards or spaces; not %q)", n.id, bus.ControlAll)
	}
	// Archives a crash left half unpacked.
	if leftovers, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, DeployedDir, ".incoming-*")); len(leftovers) > 0 {
		for _, d := range leftovers {
			_ = os.RemoveAll(d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &control{n: n, started: time.Now(), ctx: ctx, cancel: cancel, sources: map[string]string{}}
	svc, err := bus.NewService(n.conn, bus.ServiceConfig{
		Name: ControlService, Version: ControlVersion,
		Description: "astrid node control: ping, ps, start, stop, restart, upgrade, elicit, deploy",
		Metadata:    map[string]string{"node": n.id, "subject_prefix": n.cfg.SubjectPrefix},
	})
	if err != nil {
		cancel()
		return err
	}
	c.svc = svc
	handlers := map[string]func(context.Context, []byte) (any, error){
		VerbPing: c.ping, VerbPs: c.ps, VerbStart: c.capsuleOp(n.StartCapsule),
		VerbStop: c.capsuleOp(n.StopCapsule), VerbRestart: c.capsuleOp(n.RestartCapsule),
		VerbUpgrade: c.upgrade, VerbElicit: c.elicit, VerbDeploy: c.deploy,
	}
	for _, verb := range slices.Sorted(maps.Keys(handlers)) {
		h := c.wrap(handlers[verb])
		for _, target := range []string{n.id, bus.ControlAll} {
			name := verb
			if target == bus.ControlAll {
				name += "-all"
			}
			if err := svc.AddEndpoint(name, bus.ControlTopic(verb, target), h); err != nil {
				_ = svc.Stop()
				cancel()
				return err
			}
		}
	}
	if err := n.conn.NATS().Flush(); err != nil {
		_ = svc.Stop()
		cancel()
		return fmt.Errorf("supervisor: control service: %w", err)
	}
	n.ctl = c
	return nil
}

// stopControl stops taking control requests and waits (within ctx) for the
// ones being handled.
func (n *Node) stopControl(ctx context.Context) error {
	c := n.ctl
	if c == nil {
		return nil
	}
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if already {
		return nil
	}
	c.cancel()
	err := c.svc.Stop()
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("supervisor: control requests still running: %w", ctx.Err()))
	}
	return err
}

// wrap turns a control handler into a service handler: JSON reply, or a
// micro error whose body is a ControlError (or the handler's own reply,
// when it returned one with the error).
func (c *control) wrap(h func(context.Context, []byte) (any, error)) bus.ServiceHandler {
	return func(_ string, data []byte, _ map[string]string) ([]byte, error) {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, c.serviceError(nil, ErrShuttingDown)
		}
		c.inflight.Add(1)
		c.mu.Unlock()
		defer c.inflight.Done()
		v, err := h(c.ctx, data)
		if err != nil {
			return nil, c.serviceError(v, err)
		}
		return json.Marshal(v)
	}
}

func (c *control) serviceError(v any, err error) *bus.ServiceError {
	code := codeOf(err)
	body := v
	if body == nil {
		body = ControlError{Node: c.n.id, Code: code, Error: err.Error()}
	}
	data, _ := json.Marshal(body)
	return &bus.ServiceError{Code: code, Description: err.Error(), Data: data}
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrInvalidRequest):
		return CodeBadRequest
	case errors.Is(err, ErrUnknownCapsule), errors.Is(err, bus.ErrObjectNotFound):
		return CodeNotFound
	case errors.Is(err, ErrCapsuleState):
		return CodeConflict
	case errors.Is(err, ErrShuttingDown):
		return CodeShuttingDown
	case errors.Is(err, ErrNotReady), errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	default:
		return CodeInternal
	}
}

// decode reads a JSON request body strictly; an empty body decodes as {}.
func decode(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrInvalidRequest, err)
	}
	return nil
}

func (c *control) ping(context.Context, []byte) (any, error) {
	now := time.Now()
	r := PingReply{Node: c.n.id, Labels: c.n.Labels(), Started: c.started.UTC(),
		UptimeMs: now.Sub(c.started).Milliseconds(), NATSURL: c.n.ClientURL(), Version: buildVersion(),
		Peers: c.n.Peers()}
	if infos, err := c.n.Capsules(2 * time.Second); err == nil {
		r.Capsules = len(infos)
		for _, i := range infos {
			if i.State == "ready" {
				r.Ready++
			}
		}
	}
	return r, nil
}

func (c *control) ps(context.Context, []byte) (any, error) {
	infos, err := c.n.Capsules(5 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("supervisor: list capsules: %w", err)
	}
	return PsReply{Node: c.n.id, Capsules: infos}, nil
}

func (c *control) capsuleOp(op func(context.Context, string) (CapsuleInfo, error)) func(context.Context, []byte) (any, error) {
	return func(ctx context.Context, data []byte) (any, error) {
		var req CapsuleRequest
		if err := decode(data, &req); err != nil {
			return nil, err
		}
		if req.Capsule == "" {
			return nil, fmt.Errorf("%w: \"capsule\" is required", ErrInvalidRequest)
		}
		before, _ := c.n.capsule(req.Capsule)
		info, err := op(ctx, req.Capsule)
		if err != nil {
			return nil, err
		}
		return CapsuleReply{Node: c.n.id, Capsule: info, Changed: before != info}, nil
	}
}

func (c *control) upgrade(ctx context.Context, data []byte) (any, error) {
	var req UpgradeRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Dir == "" {
		return nil, fmt.Errorf("%w: \"dir\" is required", ErrInvalidRequest)
	}
	rep, err := c.n.Upgrade(ctx, req.Dir)
	if err != nil {
		return nil, err
	}
	r := UpgradeReply{Node: c.n.id, Upgraded: nonNil(rep.Upgraded), Added: nonNil(rep.Added)}
	if len(rep.Failed) > 0 {
		r.Failed = map[string]string{}
		var msgs []string
		for id, e := range rep.Failed {
			r.Failed[id] = e.Error()
			msgs = append(msgs, id+": "+e.Error())
		}
		slices.Sort(msgs)
		return r, fmt.Errorf("supervisor: upgrade from %s: %s", req.Dir, strings.Join(msgs, "; "))
	}
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *control) elicit(_ context.Context, data []byte) (any, error) {
	var req ElicitAnswer
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	topic := ElicitTopic + ".response." + req.RequestID
	switch {
	case req.RequestID == "" || strings.Contains(req.RequestID, "."):
		return nil, fmt.Errorf("%w: \"request_id\" must be one topic segment", ErrInvalidRequest)
	case !bus.ValidPrincipal(req.Principal):
		return nil, fmt.Errorf("%w: \"principal\" must be 1 to 64 of [a-zA-Z0-9_-]", ErrInvalidRequest)
	case bus.ValidateTopic(topic) != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, bus.ValidateTopic(topic))
	}
	body, _ := json.Marshal(ElicitResponse{RequestID: req.RequestID, Value: req.Value, Values: req.Values})
	// The principal is the requester's claim, exactly as if it had
	// answered on the topic itself (astrid elicit does).
	if err := c.n.t.Publish(&bus.Message{Topic: topic, Payload: body, Principal: req.Principal,
		Attribution: bus.Claimed, Origin: bus.OriginSystem}); err != nil {
		return nil, err
	}
	if err := c.n.t.Flush(); err != nil {
		return nil, err
	}
	return ElicitReply{Node: c.n.id, RequestID: req.RequestID, Topic: topic}, nil
}

func (c *control) deploy(ctx context.Context, data []byte) (any, error) {
	var req DeployRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.BucketKey == "" {
		return nil, fmt.Errorf("%w: \"bucket_key\" is required", ErrInvalidRequest)
	}
	labels := c.n.Labels()
	for k, v := range req.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return DeployReply{Node: c.n.id, Action: "skipped",
				Reason: fmt.Sprintf("label %s=%s not on this node", k, v)}, nil
		}
	}
	r, err := c.n.Deploy(ctx, req.BucketKey)
	if r != nil {
		r.Node = c.n.id
	}
	if err != nil {
		if r != nil {
			return r, err
		}
		return nil, err
	}
	return r, nil
}

// buildVersion is the astrid module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// withDeployed puts <data>/deployed first among the paths of the node's
// first Load, so capsules deployed before a restart come back, and win
// over a copy of the same capsule in the other paths.
func (c *control) withDeployed(paths []string) []string {
	if c == nil || c.deployedLoaded {
		return paths
	}
	c.deployedLoaded = true
	root := filepath.Join(c.n.cfg.DataDir, DeployedDir)
	files, err := manifests.Discover(root)
	if err != nil || len(files) == 0 {
		return paths
	}
	for _, f := range files {
		if m, _, err := manifests.Load(f); err == nil {
			c.sources[m.ID()] = filepath.Dir(f)
		}
	}
	c.n.log.Info().Str("dir", root).Int("capsules", len(files)).Msg("loading the capsules deployed before the restart")
	return append([]string{root}, paths...)
}

// rescanPaths is what Reload scans: the paths given to Load plus the
// directories capsules were since upgraded or deployed from.
func (c *control) rescanPaths(paths []string) []string {
	out := slices.Clone(paths)
	if c == nil {
		return out
	}
	for _, id := range slices.Sorted(maps.Keys(c.sources)) {
		// A dir already scanned, or under a scanned dir of capsule dirs
		// (<data>/deployed), is not added twice.
		if d := c.sources[id]; !slices.Contains(out, d) && !slices.Contains(out, filepath.Dir(d)) {
			out = append(out, d)
		}
	}
	return out
}

// elsewhere reports whether capsule id was last upgraded or deployed from
// a directory other than the one holding manifest file f.
func (c *control) elsewhere(id, f string) bool {
	if c == nil {
		return false
	}
	d, ok := c.sources[id]
	return ok && d != filepath.Dir(f)
}

// Upgrade hot-upgrades, from the capsule directories under paths (a
// capsule dir or a dir of capsule dirs), every capsule whose binary or
// version differs from what runs, like Reload does on SIGHUP, and loads
// the capsules not running yet. Later Reloads look for an upgraded capsule
// in its new directory. Per-capsule failures are in the report.
func (n *Node) Upgrade(ctx context.Context, paths ...string) (*ReloadReport, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no directory", ErrInvalidRequest)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		if files, err := manifests.Discover(p); err != nil || len(files) == 0 {
			return nil, fmt.Errorf("%w: no Capsule.toml under %s", ErrInvalidRequest, p)
		}
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	rep, err := n.upgradeFrom(ctx, paths, false)
	if err != nil {
		return rep, err
	}
	if n.ctl != nil && len(rep.Upgraded) > 0 {
		for _, p := range paths {
			files, _ := manifests.Discover(p)
			for _, f := range files {
				if m, _, err := manifests.Load(f); err == nil && slices.Contains(rep.Upgraded, m.ID()) {
					n.ctl.sources[m.ID()] = filepath.Dir(f)
				}
			}
		}
	}
	return rep, nil
}

// Deploy fetches the capsule archive stored under key in the
// CapsuleBucket object store (PackCapsule's format), unpacks it into
// <data>/deployed/<capsule>/ and loads it, or hot-upgrades it when a
// capsule of that id already runs. The reply's Node is left empty.
func (n *Node) Deploy(ctx context.Context, key string) (*DeployReply, error) {
	store, err := bus.OpenObjectStore(ctx, n.conn, bus.ObjectStoreConfig{Bucket: CapsuleBucket})
	if err != nil {
		return nil, err
	}
	archive, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	root := filepath.Join(n.cfg.DataDir, DeployedDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("supervisor: deploy: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".incoming-")
	if err != nil {
		return nil, fmt.Errorf("supervisor: deploy: %w", err)
	}
	defer os.RemoveAll(tmp)
	m, err := unpackCapsule(archive, tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidRequest, key, err)
	}
	id := m.ID()
	r := &DeployReply{Capsule: id, Version: m.Package.VersionRaw}
	dir := filepath.Join(root, id)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("supervisor: deploy: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("supervisor: deploy: %w", err)
	}
	r.Dir = dir
	running := slices.Contains(n.order, id)
	rep, err := n.upgradeFrom(ctx, []string{dir}, false)
	if err != nil {
		return r, err
	}
	if e := rep.Failed[id]; e != nil {
		r.Action = "failed"
		return r, fmt.Errorf("supervisor: deploy %s %s: %w", id, r.Version, e)
	}
	switch {
	case slices.Contains(rep.Upgraded, id):
		r.Action = "upgraded"
	case slices.Contains(rep.Added, id):
		r.Action = "loaded"
	case running:
		r.Action = "unchanged"
	default:
		r.Action = "failed"
		return r, fmt.Errorf("supervisor: deploy %s %s: not loaded", id, r.Version)
	}
	if n.ctl != nil {
		n.ctl.sources[id] = dir
	}
	return r, nil
}

// Archive limits (a capsule is a manifest and a few wasm files).
const (
	maxArchiveFiles = 16
	maxArchiveBytes = 256 << 20
)

// CapsuleArchive is a capsule packed for the object store by PackCapsule.
type CapsuleArchive struct {
	// ID and Version are the manifest's.
	ID, Version string
	// Key is the object name: "<id>/<version>/<first 12 hex of SHA-256>".
	Key string
	// Data is a gzip-compressed tar of Capsule.toml and the component
	// files, all at the archive root.
	Data []byte
}

// PackCapsule packs the capsule in dir (its Capsule.toml and the wasm
// files its [[component]] entries name) for Deploy.
func PackCapsule(dir string) (*CapsuleArchive, error) {
	mpath := filepath.Join(dir, "Capsule.toml")
	m, _, err := manifests.Load(mpath)
	if err != nil {
		return nil, err
	}
	files := []string{"Capsule.toml"}
	for _, c := range m.Components {
		if c.File == "" || filepath.Base(c.File) != c.File {
			return nil, fmt.Errorf("%w: %s: component file %q must be a plain file name beside Capsule.toml", ErrInvalidRequest, mpath, c.File)
		}
		if !slices.Contains(files, c.File) {
			files = append(files, c.File)
		}
	}
	if len(files) < 2 {
		return nil, fmt.Errorf("%w: %s: no [[component]] with a wasm file", ErrInvalidRequest, mpath)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("supervisor: pack %s: %w", dir, err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return &CapsuleArchive{ID: m.ID(), Version: m.Package.VersionRaw,
		Key: m.ID() + "/" + m.Package.VersionRaw + "/" + hex.EncodeToString(sum[:])[:12], Data: buf.Bytes()}, nil
}

// unpackCapsule writes the archive's files into dir and returns the
// parsed manifest. Only plain files at the archive root are accepted.
func unpackCapsule(data []byte, dir string) (*manifests.Manifest, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var total int64
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg || name == "" || name == "." || name == ".." || filepath.Base(name) != name || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("archive entry %q is not a plain file at the root", name)
		}
		if slices.Contains(names, name) || len(names) >= maxArchiveFiles {
			return nil, fmt.Errorf("archive entry %q: duplicate or too many files", name)
		}
		total += h.Size
		if h.Size < 0 || total > maxArchiveBytes {
			return nil, fmt.Errorf("archive larger than %d bytes", maxArchiveBytes)
		}
		b, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	if !slices.Contains(names, "Capsule.toml") {
		return nil, errors.New("archive has no Capsule.toml")
	}
	m, _, err := manifests.Load(filepath.Join(dir, "Capsule.toml"))
	if err != nil {
		return nil, err
	}
	for _, c := range m.Components {
		if !slices.Contains(names, c.File) {
			return nil, fmt.Errorf("archive lacks component file %q", c.File)
		}
	}
	return m, nil
}

// operate asks the supervisor actor to start, stop or restart a capsule for
// the control plane; the reply is an *operated.
type operate struct {
	op string // "start", "stop", "stopped" (the stop finished), "restart"
	id string
}

type operated struct {
	info    CapsuleInfo
	pid     *actor.PID    // stop: the actor the caller stops
	ready   chan struct{} // start, restart: closed when ready
	readyTO time.Duration
	err     error
}

func (c *child) info() CapsuleInfo {
	return CapsuleInfo{ID: c.id, Version: c.version, State: c.state, Restarts: c.restart, RunLoop: c.runLoop, LastFailure: c.last}
}

// operate runs in the supervisor actor. A stopped capsule has no actor
// (pid nil); starting it again spawns one as a new generation, so that
// anything its previous actor still sends is ignored.
func (s *supervisorActor) operate(ctx actor.Context, m *operate) *operated {
	c := s.capsules[m.id]
	if c == nil {
		return &operated{err: fmt.Errorf("%w: %s", ErrUnknownCapsule, m.id)}
	}
	r := &operated{readyTO: c.readyTO}
	refuse := func(why string) *operated {
		r.err = fmt.Errorf("%w: capsule %s %s", ErrCapsuleState, c.id, why)
		r.info = c.info()
		return r
	}
	if s.pending[m.id] != nil && m.op != "stopped" {
		return refuse("is being upgraded")
	}
	switch m.op {
	case "stop":
		switch c.state {
		case "stopped":
		case "stopping":
			return refuse("is already stopping")
		default:
			r.pid = c.pid
			delete(s.byPID, c.pid.Id)
			c.pid = nil
			c.gen++
			c.state = "stopping"
			s.log.Info().Str("capsule", c.id).Msg("stopping capsule (operator)")
		}
	case "stopped":
		if c.state == "stopping" {
			c.state = "stopped"
			s.emit(Event{Capsule: c.id, Version: c.version, Event: "stopped", Reason: "stopped by operator"})
		}
	case "start":
		switch c.state {
		case "stopped":
			cfg := c.cfg
			c.gen++
			cfg.Generation, cfg.Unrouted = c.gen, false
			c.cfg = cfg
			c.tr = tracker{policy: c.tr.policy}
			c.state = "starting"
			r.ready = s.readyChan(c)
			if c.pid = s.start(ctx, c, cfg); c.pid == nil {
				c.state, r.ready = "stopped", nil // start may be retried
				r.err = fmt.Errorf("supervisor: start capsule %s: %s", c.id, c.last)
			}
			s.log.Info().Str("capsule", c.id).Msg("starting capsule (operator)")
		case "quarantined":
			c.tr = tracker{policy: c.tr.policy}
			r.ready = s.reincarnate(ctx, c, "started by operator")
		case "stopping":
			return refuse("is stopping")
		}
	case "restart":
		switch c.state {
		case "stopped", "stopping":
			return refuse("is stopped (start it)")
		case "quarantined":
			c.tr = tracker{policy: c.tr.policy}
		}
		c.restart++
		r.ready = s.reincarnate(ctx, c, "restarted by operator")
	}
	r.info = c.info()
	return r
}

// reincarnate makes c's actor start a fresh incarnation now.
func (s *supervisorActor) reincarnate(ctx actor.Context, c *child, reason string) chan struct{} {
	c.state = "starting"
	ready := s.readyChan(c)
	s.log.Info().Str("capsule", c.id).Str("reason", reason).Msg("restarting capsule (operator)")
	ctx.Send(c.pid, &actors.Restart{Reason: reason})
	return ready
}

// readyChan returns the channel closed at c's next readiness.
func (s *supervisorActor) readyChan(c *child) chan struct{} {
	if c.ready == nil {
		c.ready = make(chan struct{})
	}
	return c.ready
}

func (n *Node) operate(op, id string) (*operated, error) {
	res, err := n.system.Root.RequestFuture(n.sup, &operate{op: op, id: id}, 5*time.Second).Result()
	if err != nil {
		return nil, fmt.Errorf("supervisor: %s %s: %w", op, id, err)
	}
	r := res.(*operated)
	if errors.Is(r.err, ErrUnknownCapsule) {
		// Loaded but without an actor here: a singleton another node holds.
		if info, err := n.capsule(id); err == nil {
			r.info = info
			r.err = fmt.Errorf("%w: capsule %s is %s on this node", ErrCapsuleState, id, info.State)
		}
	}
	return r, r.err
}

// capsule returns one capsule's info.
func (n *Node) capsule(id string) (CapsuleInfo, error) {
	infos, err := n.Capsules(5 * time.Second)
	if err != nil {
		return CapsuleInfo{}, err
	}
	for _, i := range infos {
		if i.ID == id {
			return i, nil
		}
	}
	return CapsuleInfo{}, fmt.Errorf("%w: %s", ErrUnknownCapsule, id)
}

// StopCapsule stops capsule id: its actor ends its incarnation and leaves
// the router, so the node no longer subscribes to its topics, and it stays
// "stopped" (no restart) until StartCapsule. Stopping a stopped capsule
// does nothing. Goroutine-safe.
func (n *Node) StopCapsule(ctx context.Context, id string) (CapsuleInfo, error) {
	r, err := n.operate("stop", id)
	if err != nil {
		return CapsuleInfo{}, err
	}
	if r.pid == nil {
		return r.info, nil
	}
	werr := n.system.Root.StopFuture(r.pid).Wait()
	// Once the server has processed the unsubscriptions, requests for the
	// capsule's topics no longer reach this node.
	if err := n.t.Flush(); err != nil {
		werr = errors.Join(werr, err)
	}
	if r, err = n.operate("stopped", id); err != nil {
		return CapsuleInfo{}, err
	}
	if werr != nil {
		return r.info, fmt.Errorf("supervisor: stop %s: %w", id, werr)
	}
	return r.info, ctx.Err()
}

// StartCapsule starts capsule id when it is stopped or quarantined (with a
// fresh restart budget) and waits, within ctx and its readiness timeout,
// until it is ready. Starting a running capsule does nothing.
// Goroutine-safe.
func (n *Node) StartCapsule(ctx context.Context, id string) (CapsuleInfo, error) {
	r, err := n.operate("start", id)
	if err != nil {
		return r.infoOrZero(), err
	}
	return n.awaitReady(ctx, id, r)
}

// RestartCapsule ends capsule id's current incarnation and starts a fresh
// one (a "restarted" event; the restart count goes up), then waits like
// StartCapsule. A quarantined capsule gets a fresh restart budget; a
// stopped one is refused (ErrCapsuleState). Goroutine-safe.
func (n *Node) RestartCapsule(ctx context.Context, id string) (CapsuleInfo, error) {
	r, err := n.operate("restart", id)
	if err != nil {
		return r.infoOrZero(), err
	}
	return n.awaitReady(ctx, id, r)
}

func (r *operated) infoOrZero() CapsuleInfo {
	if r == nil {
		return CapsuleInfo{}
	}
	return r.info
}

func (n *Node) awaitReady(ctx context.Context, id string, r *operated) (CapsuleInfo, error) {
	if r.ready == nil {
		return r.info, nil
	}
	wait := r.readyTO + time.Second
	t := time.NewTimer(wait)
	defer t.Stop()
	var werr error
	select {
	case <-r.ready:
	case <-t.C:
		werr = fmt.Errorf("%w: capsule %s not ready within %v", ErrNotReady, id, wait)
	case <-ctx.Done():
		werr = ctx.Err()
	}
	info, err := n.capsule(id)
	if err != nil {
		return r.info, err
	}
	if werr != nil {
		return info, fmt.Errorf("%w (state %s, last failure %q)", werr, info.State, info.LastFailure)
	}
	return info, nil
}
