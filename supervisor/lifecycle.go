package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/actors"
	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/manifests"
)

// LifecycleTimeout bounds an install or upgrade hook (Astrid's
// LIFECYCLE_TIMEOUT_SECS): a human may be answering elicit prompts.
const LifecycleTimeout = 10 * time.Minute

// Record is what the node remembers about an installed capsule.
type Record struct {
	Version     string    `json:"version"`
	WasmHash    string    `json:"wasm_hash"`
	InstalledAt time.Time `json:"installed_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// records is the node's install record: <data>/state/capsules.json, written
// atomically (temp file, then rename). Installed binaries and manifests are
// kept content-addressed under <data>/store so a failed upgrade can fall
// back to the recorded version.
//
// # Concurrency
//
// Guarded by mu; Load and Reload use it from one goroutine at a time.
type records struct {
	mu   sync.Mutex
	dir  string
	path string
	m    map[string]Record
}

func openRecords(dataDir string) (*records, error) {
	r := &records{dir: dataDir, path: filepath.Join(dataDir, "state", "capsules.json"), m: map[string]Record{}}
	b, err := os.ReadFile(r.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("supervisor: install records: %w", err)
	}
	if err := json.Unmarshal(b, &r.m); err != nil {
		return nil, fmt.Errorf("supervisor: install records %s: %w", r.path, err)
	}
	return r, nil
}

func (r *records) get(id string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.m[id]
	return rec, ok
}

func (r *records) put(id string, rec Record, wasm, manifest []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := writeAtomic(r.wasmPath(rec.WasmHash), wasm, 0o644); err != nil {
		return err
	}
	if err := writeAtomic(r.manifestPath(id, rec.WasmHash), manifest, 0o644); err != nil {
		return err
	}
	r.m[id] = rec
	b, _ := json.MarshalIndent(r.m, "", "  ")
	return writeAtomic(r.path, b, 0o644)
}

func (r *records) wasmPath(hash string) string {
	return filepath.Join(r.dir, "store", "bin", hash+".wasm")
}

func (r *records) manifestPath(id, hash string) string {
	return filepath.Join(r.dir, "store", "manifests", id+"-"+hash[:16]+".toml")
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// candidate is one capsule version ready to start.
type candidate struct {
	file     string // manifest path
	m        *manifests.Manifest
	mod      *capsule.Module
	wasm     []byte
	manifest []byte
}

// lifecycle runs the install hook on first load or the upgrade hook when
// the version or binary changed, in a one-shot instance, before the capsule
// serves, and records the version. On failure of an upgrade the recorded
// previous version is returned instead, so it keeps running.
func (n *Node) lifecycle(ctx context.Context, c *candidate) (*candidate, error) {
	changed, err := n.runLifecycleHook(ctx, c)
	if err == nil {
		if changed {
			return c, n.commit(c)
		}
		return c, nil
	}
	rec, installed := n.records.get(c.m.ID())
	if !installed {
		return nil, err
	}
	prev, perr := n.recorded(ctx, c.m.ID(), rec)
	if perr != nil {
		return nil, fmt.Errorf("%w; and the recorded version %s cannot be loaded: %v", err, rec.Version, perr)
	}
	n.log.Warn().Str("capsule", c.m.ID()).Str("version", rec.Version).Msg("keeping the recorded version after a failed upgrade")
	return prev, nil
}

// runLifecycleHook runs the hook c needs, if any, and reports whether c
// differs from the recorded version. A failing hook is reported as an event.
func (n *Node) runLifecycleHook(ctx context.Context, c *candidate) (changed bool, err error) {
	id := c.m.ID()
	rec, installed := n.records.get(id)
	if installed && rec.WasmHash == c.mod.Hash() && rec.Version == c.m.Package.VersionRaw {
		return false, nil
	}
	phase := hoststate.PhaseInstall
	if installed {
		phase = hoststate.PhaseUpgrade
	}
	if err := n.runHook(ctx, c, phase, rec.Version); err != nil {
		n.log.Error().Err(err).Str("capsule", id).Str("phase", phase.String()).Msg("lifecycle hook failed")
		n.emit(Event{Capsule: id, Version: c.m.Package.VersionRaw, Event: "failed", Kind: phase.String() + "-hook", Reason: err.Error()})
		return true, err
	}
	return true, nil
}

// commit records c as the installed version and announces it.
func (n *Node) commit(c *candidate) error {
	id := c.m.ID()
	rec, installed := n.records.get(id)
	now := time.Now().UTC()
	nr := Record{Version: c.m.Package.VersionRaw, WasmHash: c.mod.Hash(), InstalledAt: now, UpdatedAt: now}
	if installed {
		nr.InstalledAt = rec.InstalledAt
	}
	if err := n.records.put(id, nr, c.wasm, c.manifest); err != nil {
		return fmt.Errorf("capsule %s: record install: %w", id, err)
	}
	ev := Event{Capsule: id, Version: nr.Version, Event: "installed"}
	if installed {
		ev.Event, ev.Previous = "upgraded", rec.Version
	}
	n.emit(ev)
	n.log.Info().Str("capsule", id).Str("version", nr.Version).Str("previous", rec.Version).Msg("capsule " + ev.Event)
	return nil
}

// recorded loads the recorded version of id from the node's store.
func (n *Node) recorded(ctx context.Context, id string, rec Record) (*candidate, error) {
	mpath := n.records.manifestPath(id, rec.WasmHash)
	mb, err := os.ReadFile(mpath)
	if err != nil {
		return nil, err
	}
	m, _, err := manifests.Parse(mpath, mb)
	if err != nil {
		return nil, err
	}
	if m, err = n.cfg.File.apply(m); err != nil {
		return nil, err
	}
	wasm, err := os.ReadFile(n.records.wasmPath(rec.WasmHash))
	if err != nil {
		return nil, err
	}
	mod, err := n.engine.Compile(ctx, wasm, m.Limits.MemoryPages)
	if err != nil {
		return nil, err
	}
	return &candidate{file: mpath, m: m, mod: mod, wasm: wasm, manifest: mb}, nil
}

// runHook runs the install or upgrade export, if the module has it.
func (n *Node) runHook(ctx context.Context, c *candidate, phase hoststate.Phase, prev string) error {
	ex := c.mod.Exports()
	if (phase == hoststate.PhaseInstall && !ex.Install) || (phase == hoststate.PhaseUpgrade && !ex.Upgrade) {
		return nil
	}
	id := c.m.ID()
	log := n.log.With().Str("capsule", id).Str("phase", phase.String()).Logger()
	cfg := stateConfig(c.m, n.cfg.Owner)
	cfg.Phase, cfg.PreviousVersion = phase, prev
	cfg.Env = defaultEnv(c.m)
	cfg.Secrets, cfg.Elicitor, cfg.Config, cfg.Profiles = n.secrets, n.elicitor, n.config, n.profiles
	cfg.Logs, cfg.OnQuota = n.logs, n.quotaExceeded
	hctx, cancel := context.WithTimeout(ctx, LifecycleTimeout)
	defer cancel()
	st := hoststate.New(hctx, cfg, n.t, n.kvq, hoststate.NewInbox(1), log)
	defer st.Cancel(errors.New("lifecycle hook done"))
	inst, err := c.mod.Instantiate(st, capsule.InstanceConfig{CallTimeout: LifecycleTimeout})
	if err != nil {
		return err
	}
	defer inst.Close()
	if phase == hoststate.PhaseInstall {
		return inst.Install(LifecycleTimeout)
	}
	return inst.Upgrade(prev, LifecycleTimeout)
}

// stateConfig is the hoststate configuration of a capsule (shared with the
// actors package's own, for lifecycle instances).
func stateConfig(m *manifests.Manifest, owner string) hoststate.Config {
	cfg := hoststate.Config{CapsuleID: m.ID(), Version: m.Package.VersionRaw, Owner: owner,
		Publish: m.PublishTopics(), Subscribe: m.SubscribeTopics()}
	for _, e := range m.Env {
		if e.Type == manifests.EnvSecret {
			cfg.SecretKeys = append(cfg.SecretKeys, e.Name)
		}
	}
	return cfg
}

func (n *Node) emit(ev Event) {
	n.observe(ev)
	ev.Time = time.Now().UTC().Format(time.RFC3339Nano)
	ev.Node = n.id
	body, _ := json.Marshal(ev)
	n.publishEvent("astrid.v1.capsule."+ev.Capsule+"."+ev.Event, body)
}

// ElicitTopic carries elicit requests; answers go to ElicitTopic +
// ".response.<request_id>".
const ElicitTopic = "astrid.v1.elicit"

// ElicitMessage is the JSON body published on astrid.v1.elicit.
type ElicitMessage struct {
	RequestID string                  `json:"request_id"`
	CapsuleID string                  `json:"capsule_id"`
	Field     hoststate.ElicitRequest `json:"field"`
}

// ElicitResponse is the JSON body of an answer. Neither value nor values
// means the operator declined.
type ElicitResponse struct {
	RequestID string   `json:"request_id"`
	Value     *string  `json:"value,omitempty"`
	Values    []string `json:"values,omitempty"`
}

// busElicitor answers elicit calls from the node config's [answers] or
// over NATS: it subscribes to the response subject before publishing the
// request and accepts only an answer from the same principal.
//
// # Concurrency
//
// Goroutine-safe; answers is read-only after construction.
type busElicitor struct {
	t       *actors.Transport
	config  *FileConfigStore
	answers map[string]map[string]any
	log     zerolog.Logger
}

func (e *busElicitor) Elicit(ctx context.Context, capsuleID, principal string, req hoststate.ElicitRequest) (hoststate.ElicitAnswer, error) {
	if v, ok := e.answers[capsuleID][req.Key]; ok {
		return answerOf(req, v), nil
	}
	id := uuid.NewString()
	got := make(chan ElicitResponse, 1)
	cancel, err := e.t.Subscribe(ElicitTopic+".response."+id, func(m *bus.Message) {
		if m.Principal != principal {
			e.log.Warn().Str("capsule", capsuleID).Str("from", m.Principal).Msg("elicit answer from another principal ignored")
			return
		}
		var r ElicitResponse
		if json.Unmarshal(m.Payload, &r) != nil {
			return
		}
		select {
		case got <- r:
		default:
		}
	})
	if err != nil {
		return hoststate.ElicitAnswer{}, err
	}
	defer cancel()
	if err := e.t.Flush(); err != nil {
		return hoststate.ElicitAnswer{}, err
	}
	body, _ := json.Marshal(ElicitMessage{RequestID: id, CapsuleID: capsuleID, Field: req})
	if err := e.t.Publish(&bus.Message{Topic: ElicitTopic, Payload: body, Principal: principal,
		Attribution: bus.Verified, Origin: bus.OriginSystem}); err != nil {
		return hoststate.ElicitAnswer{}, err
	}
	e.log.Info().Str("capsule", capsuleID).Str("key", req.Key).Str("request_id", id).
		Msg("waiting for an elicit answer (astrid elicit)")
	select {
	case r := <-got:
		switch {
		case r.Value != nil:
			if req.Kind != "secret" && e.config != nil {
				// A non-secret answer is also the capsule's stored config.
				if err := e.config.Set(principal, capsuleID, req.Key, *r.Value); err != nil {
					e.log.Warn().Err(err).Str("capsule", capsuleID).Msg("elicit answer not stored as config")
				}
			}
			return hoststate.ElicitAnswer{Value: *r.Value}, nil
		case r.Values != nil:
			return hoststate.ElicitAnswer{Values: r.Values}, nil
		}
		return hoststate.ElicitAnswer{}, hoststate.ErrCancelled
	case <-ctx.Done():
		return hoststate.ElicitAnswer{}, ctx.Err()
	}
}

func answerOf(req hoststate.ElicitRequest, v any) hoststate.ElicitAnswer {
	switch x := v.(type) {
	case []any:
		var vals []string
		for _, e := range x {
			vals = append(vals, fmt.Sprint(e))
		}
		return hoststate.ElicitAnswer{Values: vals}
	case string:
		if req.Kind == "array" {
			return hoststate.ElicitAnswer{Values: strings.Split(x, ",")}
		}
		return hoststate.ElicitAnswer{Value: x}
	default:
		return hoststate.ElicitAnswer{Value: fmt.Sprint(x)}
	}
}
