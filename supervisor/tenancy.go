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
	"sync/atomic"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/manifests"
)

// FileProfiles reads quota profiles from <data>/profiles: default.toml for
// the default profile and <principal>.toml for each principal. Each file
// has a [quotas] table with the hoststate.Profile keys; unknown keys are
// errors. Missing files mean the built-in defaults.
//
// # Concurrency
//
// Goroutine-safe: the profile set is an immutable map swapped atomically
// by Reload.
type FileProfiles struct {
	dir string
	set atomic.Pointer[profileSet]
}

type profileSet struct {
	def    hoststate.Profile
	byName map[string]hoststate.Profile
}

type profileFile struct {
	Quotas hoststate.Profile `toml:"quotas"`
}

// NewFileProfiles loads the profiles under dir.
func NewFileProfiles(dir string) (*FileProfiles, error) {
	p := &FileProfiles{dir: dir}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload rereads every profile file.
func (p *FileProfiles) Reload() error {
	set := &profileSet{def: hoststate.DefaultProfile(), byName: map[string]hoststate.Profile{}}
	ents, err := os.ReadDir(p.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("supervisor: profiles: %w", err)
	}
	read := func(name string) (hoststate.Profile, error) {
		var pf profileFile
		path := filepath.Join(p.dir, name)
		md, err := toml.DecodeFile(path, &pf)
		if err != nil {
			return hoststate.Profile{}, fmt.Errorf("%s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return hoststate.Profile{}, fmt.Errorf("%s: unknown key %s", path, und[0])
		}
		return pf.Quotas, nil
	}
	var errs []error
	for _, e := range ents {
		if e.Name() == "default.toml" {
			d, err := read(e.Name())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			set.def = d.WithDefaults(hoststate.DefaultProfile())
		}
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".toml")
		if !ok || e.IsDir() || name == "default" {
			continue
		}
		if !bus.ValidPrincipal(name) {
			errs = append(errs, fmt.Errorf("supervisor: profile %s: not a valid principal id", e.Name()))
			continue
		}
		pr, err := read(e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.byName[name] = pr.WithDefaults(set.def)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.set.Store(set)
	return nil
}

// Profile implements hoststate.Profiles.
func (p *FileProfiles) Profile(principal string) hoststate.Profile {
	set := p.set.Load()
	if pr, ok := set.byName[principal]; ok {
		return pr
	}
	return set.def
}

// Known reports whether principal has its own profile (it is provisioned:
// it gets its own log directory).
func (p *FileProfiles) Known(principal string) bool {
	_, ok := p.set.Load().byName[principal]
	return ok || principal == bus.DefaultPrincipal
}

// FileConfig stores non-secret [env] values per principal:
// <data>/config/<principal|@shared>/<capsule>.json, a JSON object of
// strings. Reads are cached and revalidated by modification time.
//
// # Concurrency
//
// Goroutine-safe (one mutex around the cache; writes rename a temp file).
type FileConfigStore struct {
	dir   string
	mu    sync.Mutex
	cache map[string]cachedConfig
}

type cachedConfig struct {
	mod  time.Time
	vals map[string]string
}

// NewFileConfigStore opens the store under dir.
func NewFileConfigStore(dir string) *FileConfigStore {
	return &FileConfigStore{dir: dir, cache: map[string]cachedConfig{}}
}

func (c *FileConfigStore) path(scope, capsule string) string {
	return filepath.Join(c.dir, scope, capsule+".json")
}

func (c *FileConfigStore) load(scope, capsule string) map[string]string {
	if scope != SharedScope && !bus.ValidPrincipal(scope) {
		return nil
	}
	p := c.path(scope, capsule)
	fi, err := os.Stat(p)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.cache[p]; ok && cc.mod.Equal(fi.ModTime()) {
		return cc.vals
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	vals := map[string]string{}
	if json.Unmarshal(b, &vals) != nil {
		return nil
	}
	c.cache[p] = cachedConfig{mod: fi.ModTime(), vals: vals}
	return vals
}

// Get implements hoststate.ConfigStore: principal's value, then shared.
func (c *FileConfigStore) Get(principal, capsule, key string) (string, bool) {
	for _, scope := range []string{principal, SharedScope} {
		if v, ok := c.load(scope, capsule)[key]; ok {
			return v, true
		}
	}
	return "", false
}

// Set implements hoststate.ConfigStore; scope is a principal or SharedScope.
func (c *FileConfigStore) Set(scope, capsule, key, value string) error {
	if scope != SharedScope && !bus.ValidPrincipal(scope) {
		return fmt.Errorf("config: invalid principal %q", scope)
	}
	if err := manifests.ValidateCapsuleID(capsule); err != nil {
		return err
	}
	vals := map[string]string{}
	for k, v := range c.load(scope, capsule) {
		vals[k] = v
	}
	vals[key] = value
	b, _ := json.MarshalIndent(vals, "", "  ")
	return writeAtomic(c.path(scope, capsule), b, 0o640)
}

// quotaKV enforces each principal's kv_storage_bytes on top of the bus KV
// store (Astrid never enforced its storage quota). The usage of a namespace
// is computed once from the store, then tracked as an upper bound on every
// write and recomputed exactly only near the limit. Deletes leave the bound
// alone (it is recomputed when it matters).
//
// # Concurrency
//
// Goroutine-safe: one mutex per namespace serialises its writes, so the
// running total stays exact.
type quotaKV struct {
	*bus.KV
	profiles *FileProfiles
	onQuota  func(hoststate.QuotaEvent)

	mu sync.Mutex
	ns map[string]*nsUsage
}

type nsUsage struct {
	mu     sync.Mutex
	loaded bool
	bytes  int64
}

func (q *quotaKV) usage(ctx context.Context, ns string) (*nsUsage, error) {
	q.mu.Lock()
	u := q.ns[ns]
	if u == nil {
		u = &nsUsage{}
		q.ns[ns] = u
	}
	q.mu.Unlock()
	u.mu.Lock()
	if !u.loaded {
		n, err := q.KV.Usage(ctx, ns)
		if err != nil {
			u.mu.Unlock()
			return nil, err
		}
		u.bytes, u.loaded = n, true
	}
	return u, nil // locked
}

// principalOf extracts the principal of "{principal}:capsule:{id}".
func principalOf(ns string) (principal, capsule string) {
	p, rest, _ := strings.Cut(ns, ":capsule:")
	return p, rest
}

// write applies one Put or CAS under the quota. The running total is an
// upper bound (a rewrite of an existing key is counted as growth) so the
// common path costs no extra read; when the bound would cross the limit the
// exact usage is recomputed from the store before deciding.
func (q *quotaKV) write(ctx context.Context, ns, key string, val []byte, do func() (uint64, error)) (uint64, error) {
	u, err := q.usage(ctx, ns)
	if err != nil {
		return 0, err
	}
	defer u.mu.Unlock()
	add := int64(len(key) + len(val))
	principal, capsule := principalOf(ns)
	limit := q.profiles.Profile(principal).KVStorageBytes
	if u.bytes+add > limit {
		exact, err := q.KV.Usage(ctx, ns)
		if err != nil {
			return 0, err
		}
		old := int64(0)
		if prev, _, err := q.KV.Get(ctx, ns, key); err == nil {
			old = int64(len(key) + len(prev))
		} else if !errors.Is(err, bus.ErrKeyNotFound) {
			return 0, err
		}
		u.bytes = exact
		if next := exact - old + add; next > limit && next > exact {
			if q.onQuota != nil {
				q.onQuota(hoststate.QuotaEvent{Capsule: capsule, Principal: principal, Quota: "kv_storage_bytes", Limit: limit})
			}
			return 0, &hoststate.Error{Code: hoststate.CodeQuota,
				Detail: fmt.Sprintf("KV storage quota of %d bytes for principal %s would be exceeded", limit, principal)}
		}
		add -= old
	}
	rev, err := do()
	if err == nil {
		u.bytes += add
	}
	return rev, err
}

// Put implements hoststate.KVStore with the storage quota.
func (q *quotaKV) Put(ctx context.Context, ns, key string, val []byte) (uint64, error) {
	return q.write(ctx, ns, key, val, func() (uint64, error) { return q.KV.Put(ctx, ns, key, val) })
}

// CAS implements hoststate.KVStore with the storage quota.
func (q *quotaKV) CAS(ctx context.Context, ns, key string, expected []byte, expectAbsent bool, val []byte) (uint64, error) {
	return q.write(ctx, ns, key, val, func() (uint64, error) { return q.KV.CAS(ctx, ns, key, expected, expectAbsent, val) })
}

// ClearPrefix implements hoststate.KVStore; the usage is recomputed.
func (q *quotaKV) ClearPrefix(ctx context.Context, ns, prefix string) (int, error) {
	u, err := q.usage(ctx, ns)
	if err != nil {
		return 0, err
	}
	defer u.mu.Unlock()
	n, err := q.KV.ClearPrefix(ctx, ns, prefix)
	if usage, uerr := q.KV.Usage(ctx, ns); uerr == nil {
		u.bytes = usage
	}
	return n, err
}

// OnboardingTopic announces capsules that need configuration.
const OnboardingTopic = "astrid.v1.onboarding.required"

// OnboardingField is one missing [env] value.
type OnboardingField struct {
	Key         string   `json:"key"`
	Type        string   `json:"type"`
	Request     string   `json:"request,omitempty"`
	Description string   `json:"description,omitempty"`
	Placeholder string   `json:"placeholder,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Onboarding is the body of astrid.v1.onboarding.required.
type Onboarding struct {
	CapsuleID string            `json:"capsule_id"`
	Principal string            `json:"principal"`
	Fields    []OnboardingField `json:"fields"`
}

// missingConfig lists the [env] keys of m that have no value for
// principal: no stored value, no default, no single-choice autofill and,
// for secrets, nothing in the secret store.
func (n *Node) missingConfig(m *manifests.Manifest, principal string) []OnboardingField {
	var out []OnboardingField
	for _, e := range m.Env {
		if e.Type == manifests.EnvSecret {
			if _, err := n.secrets.Get(principal, m.ID(), e.Name); err == nil {
				continue
			}
		} else {
			if _, ok := n.config.Get(principal, m.ID(), e.Name); ok {
				continue
			}
			if e.Default != nil || (e.Type == manifests.EnvSelect && len(e.EnumValues) == 1) {
				continue
			}
		}
		out = append(out, OnboardingField{Key: e.Name, Type: e.Type, Request: e.Request, Description: e.Description,
			Placeholder: e.Placeholder, Options: e.EnumValues})
	}
	return out
}
