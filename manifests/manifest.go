package manifests

import (
	"sort"
	"time"

	"github.com/Masterminds/semver/v3"
)

// RuntimeVersion is the Astrid version this runtime is compatible with. A
// manifest's package.astrid-version requirement is checked against it.
const RuntimeVersion = "0.10.4"

// FileName is the name a capsule manifest must have inside a capsule
// directory.
const FileName = "Capsule.toml"

// Manifest is a parsed Capsule.toml in the current (Astrid 0.8+) model.
// Legacy constructs have already been translated: [[interceptor]] entries are
// Subscribe entries with a Handler, capabilities.ipc_publish/ipc_subscribe are
// Publish/Subscribe entries, and every [[component]].capabilities table is
// merged into Capabilities. Legacy data with no current equivalent is kept in
// Dependencies, Topics, Crons, LLMProviders and Connectors.
//
// Lists keep the order of the source file; Publish, Subscribe, Imports,
// Exports and Env are ordered by where their keys appear.
//
// # Concurrency
//
// A Manifest is a plain value: it is read-only once Parse returns it and may
// then be read from any number of goroutines. Copy it to change it.
type Manifest struct {
	// File is the file name given to Parse (the path given to Load).
	File string

	Package      Package
	Components   []Component
	Capabilities Capabilities
	Imports      []Import
	Exports      []Export
	Publish      []PublishEntry
	Subscribe    []SubscribeEntry
	Env          []EnvVar
	Tools        []Tool
	Commands     []Command
	Uplinks      []Uplink
	MCPServers   []MCPServer
	Skills       []Skill
	ContextFiles []ContextFile

	// Limits and Supervision are this runtime's own tables; see
	// docs/manifest.md.
	Limits      Limits
	Supervision Supervision

	// Dependencies holds legacy [dependencies] provides/requires edges; nil
	// when the manifest has no [dependencies] table.
	Dependencies *Dependencies
	// Topics holds legacy [[topic]] declarations (those with a direction
	// are also translated into Publish/Subscribe entries).
	Topics []Topic
	// Crons, LLMProviders and Connectors are legacy sections kept as data;
	// the runtime does not act on them.
	Crons        []Cron
	LLMProviders []LLMProvider
	Connectors   []Connector
}

// ID returns the capsule id, which is package.name.
func (m *Manifest) ID() string { return m.Package.Name }

// Interceptor is an effective interceptor binding: a Subscribe entry with a
// handler.
type Interceptor struct {
	// Topic is the subscribe key (a topic or pattern).
	Topic string
	// Action is the handler name passed to the guest.
	Action string
	// Priority orders interceptors of one topic; lower fires first.
	Priority uint32
}

// Interceptors returns the effective interceptor bindings: every Subscribe
// entry with a Handler, sorted by priority (lower first) and then by
// declaration order.
func (m *Manifest) Interceptors() []Interceptor {
	var out []Interceptor
	for _, s := range m.Subscribe {
		if s.Handler == "" {
			continue
		}
		out = append(out, Interceptor{Topic: s.Topic, Action: s.Handler, Priority: s.Priority})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return out
}

// PublishTopics returns the publish ACL: every Publish key in order.
func (m *Manifest) PublishTopics() []string {
	out := make([]string, 0, len(m.Publish))
	for _, p := range m.Publish {
		out = append(out, p.Topic)
	}
	return out
}

// SubscribeTopics returns the subscribe ACL: every Subscribe key in order.
func (m *Manifest) SubscribeTopics() []string {
	out := make([]string, 0, len(m.Subscribe))
	for _, s := range m.Subscribe {
		out = append(out, s.Topic)
	}
	return out
}

// Package is the [package] table.
type Package struct {
	// Name is the capsule id: lowercase ASCII letters, digits and '-'.
	Name string
	// Version is the parsed package version; nil when VersionRaw is not
	// valid semver.
	Version    *semver.Version
	VersionRaw string
	// AstridVersion is the parsed astrid-version requirement; nil when
	// absent or invalid.
	AstridVersion    *semver.Constraints
	AstridVersionRaw string

	Description   string
	Authors       []string
	License       string
	LicenseFile   string
	Readme        string
	Repository    string
	Homepage      string
	Documentation string
	Keywords      []string
	Categories    []string
	// Publish says whether registry publication is allowed; nil means the
	// default (true).
	Publish  *bool
	Include  []string
	Exclude  []string
	Metadata map[string]any
}

// Component is one [[component]] (a WASM binary).
type Component struct {
	ID string
	// File is the wasm path relative to Capsule.toml (alias: entrypoint).
	File string
	Hash string
	// Type is "executable" (the default) or "library".
	Type string
	// Link lists component ids; reserved, not implemented.
	Link []string
	// Capabilities is the inline capabilities table as declared (nil when
	// absent). It is already merged into Manifest.Capabilities.
	Capabilities *Capabilities
}

// Component types.
const (
	ComponentExecutable = "executable"
	ComponentLibrary    = "library"
)

// Capabilities is the [capabilities] table. Every field defaults to deny.
// Empty lists are stored as nil.
type Capabilities struct {
	Uplink               bool
	Net                  []string
	NetConnect           []string
	NetBind              []string
	BindWorkers          *int
	KV                   []string
	FsRead               []string
	FsWrite              []string
	HostProcess          []string
	AllowPersistent      bool
	Identity             []string
	AllowPromptInjection bool
}

// SourcePin is the optional source of a WIT reference in a long-form
// publish/subscribe entry: exactly one of version, tag, rev, branch, path.
type SourcePin struct {
	// Kind is "version", "tag", "rev", "branch" or "path".
	Kind  string
	Value string
}

// PublishEntry is one [publish] key.
type PublishEntry struct {
	Topic string
	// Wit is the payload reference: a local record name,
	// "@scope/repo/iface/record", or "opaque".
	Wit string
	// Fanout is a documentation hint: the last segment names a recipient.
	Fanout bool
	Source *SourcePin
}

// SubscribeEntry is one [subscribe] key. An entry with a Handler is an
// interceptor binding.
type SubscribeEntry struct {
	Topic   string
	Wit     string
	Handler string
	// Priority is the interceptor priority, 100 unless HasPriority.
	Priority    uint32
	HasPriority bool
	Source      *SourcePin
}

// DefaultPriority is the interceptor priority when none is given.
const DefaultPriority = 100

// Import is one [imports] entry: "namespace:interface" = requirement.
type Import struct {
	Namespace string
	Interface string
	// Requirement is the parsed version requirement; nil when
	// RequirementRaw is not a valid requirement.
	Requirement    *semver.Constraints
	RequirementRaw string
	// Optional imports do not block boot when unsatisfied.
	Optional bool
}

// Export is one [exports] entry: "namespace:interface" = exact version.
type Export struct {
	Namespace string
	Interface string
	// Version is the parsed version; nil when VersionRaw is invalid.
	Version    *semver.Version
	VersionRaw string
}

// EnvVar is one [env] entry.
type EnvVar struct {
	Name string
	// Type is "text", "secret", "select" or "array" (legacy "string" is
	// translated to "text").
	Type        string
	Request     string
	Description string
	// Default is any TOML value except a date/time: string, int64,
	// float64, bool, []any or map[string]any.
	Default     any
	EnumValues  []string
	Placeholder string
	OptionsFrom *OptionsFrom
}

// Env types.
const (
	EnvText   = "text"
	EnvSecret = "secret"
	EnvSelect = "select"
	EnvArray  = "array"
)

// OptionsFrom is a dynamic select source resolved by the installer:
// {key} placeholders refer to other env entries.
type OptionsFrom struct {
	HTTP   string
	Bearer string
	Select string
	After  []string
}

// Tool is one [[tool]]. InputSchema holds the legacy (v0.3) JSON schema.
type Tool struct {
	Name              string
	DescriptionForLLM string
	InputSchemaWit    string
	Mutable           bool
	InputSchema       map[string]any
}

// Command is one [[command]].
type Command struct {
	Name        string
	Description string
	File        string
	// Kind is "slash" (the default) or "cli".
	Kind string
}

// Command kinds.
const (
	CommandSlash = "slash"
	CommandCLI   = "cli"
)

// reservedVerbs are the built-in `astrid capsule` verbs.
var reservedVerbs = []string{"install", "update", "remove", "list", "show", "config", "tree", "build", "check", "new", "run"}

// ReservedCommandVerbs returns the built-in `astrid capsule` verbs a
// kind = "cli" command may not use (a fresh copy on each call).
func ReservedCommandVerbs() []string { return append([]string(nil), reservedVerbs...) }

// Uplink is one [[uplink]] descriptor.
type Uplink struct {
	Name     string
	Platform string
	// Profile is "chat", "interactive", "notify" or "bridge" (legacy
	// "human").
	Profile string
}

// MCPServer is one [[mcp_server]].
type MCPServer struct {
	ID          string
	Description string
	// Type is "stdio" (the default) or "wasm-ipc".
	Type    string
	Command string
	Args    []string
}

// Skill is one [[skill]]; ignored by Astrid since 0.10.
type Skill struct {
	Name        string
	Description string
	File        string
}

// ContextFile is one [[context_file]].
type ContextFile struct {
	Name string
	File string
}

// Dependencies is the legacy [dependencies] table.
type Dependencies struct {
	Provides []Dependency
	Requires []Dependency
	// ProvidesDerived is true when provides was empty and Provides was
	// derived: topic:<publish key>, tool:<tool>, llm:<provider>,
	// uplink:<uplink>.
	ProvidesDerived bool
}

// Dependency is one legacy provides/requires edge, written "kind:name".
type Dependency struct {
	// Kind is "topic", "tool", "llm" or "uplink".
	Kind string
	Name string
}

// String renders the edge as "kind:name".
func (d Dependency) String() string { return d.Kind + ":" + d.Name }

// Topic is one legacy [[topic]].
type Topic struct {
	Name string
	// Direction is "publish", "subscribe" or "" (informational only).
	Direction   string
	Description string
	Schema      string
	WitType     string
}

// Cron is one legacy [[cron]]; never implemented by Astrid, not run.
type Cron struct {
	Name     string
	Schedule string
	Action   string
}

// LLMProvider is one legacy [[llm_provider]]; not acted on.
type LLMProvider struct {
	ID           string
	Description  string
	Capabilities []string
}

// Connector is one legacy [[connector]]; not acted on.
type Connector struct {
	ID       string
	Protocol string
	Topics   []string
}

// Limits is the [limits] table (this runtime's addition). Fields hold the
// effective values, defaults applied; Set records which TOML keys the
// manifest set explicitly, so node-wide defaults can override the rest.
type Limits struct {
	// MemoryPages is the linear-memory cap in 64 KiB pages (1..65536).
	MemoryPages uint32
	// CallTimeout bounds one handler call.
	CallTimeout time.Duration
	// MailboxSize is the actor mailbox capacity.
	MailboxSize int
	// Overflow is the full-mailbox policy: "reject", "drop_oldest" or
	// "block".
	Overflow string
	// Set holds the TOML key names set in the manifest ("memory_pages",
	// "call_timeout", "mailbox_size", "overflow"); nil when none.
	Set map[string]bool
}

// IsSet reports whether the manifest set the TOML key explicitly.
func (l Limits) IsSet(key string) bool { return l.Set[key] }

// Limits defaults.
const (
	DefaultMemoryPages = 1024
	MaxMemoryPages     = 65536
	DefaultCallTimeout = 30 * time.Second
	DefaultMailboxSize = 1024
	DefaultOverflow    = "reject"
)

// DefaultLimits returns Limits with every default applied and nothing set.
func DefaultLimits() Limits {
	return Limits{
		MemoryPages: DefaultMemoryPages,
		CallTimeout: DefaultCallTimeout,
		MailboxSize: DefaultMailboxSize,
		Overflow:    DefaultOverflow,
	}
}

// Supervision is the [supervision] table (this runtime's addition). Fields
// hold the effective values, defaults applied; Set records which TOML keys
// the manifest set explicitly.
type Supervision struct {
	// Restart is "permanent" (always restart), "transient" (restart
	// after a failure only) or "temporary" (never restart).
	Restart string
	// MaxRestarts restarts are allowed within Within before the budget is
	// exhausted.
	MaxRestarts int
	Within      time.Duration
	// Restart backoff: BackoffInitial, multiplied by BackoffMultiplier per
	// consecutive failure, capped at BackoffMax.
	BackoffInitial    time.Duration
	BackoffMax        time.Duration
	BackoffMultiplier float64
	// ResetAfter of healthy running resets the backoff.
	ResetAfter time.Duration
	// OnExhausted is "quarantine" or "escalate".
	OnExhausted string
	// Singleton capsules run one instance node-wide.
	Singleton bool
	// ReadinessTimeout bounds the wait for signal_ready.
	ReadinessTimeout time.Duration
	// OnCrash is what happens to the message being handled when the
	// capsule crashes: "retry" or "deadletter".
	OnCrash string
	// PoisonThreshold is how many crashes one message may cause before it
	// is dead-lettered.
	PoisonThreshold int
	// Set holds the TOML key names set in the manifest; nil when none.
	Set map[string]bool
}

// IsSet reports whether the manifest set the TOML key explicitly.
func (s Supervision) IsSet(key string) bool { return s.Set[key] }

// Supervision defaults.
const (
	DefaultRestart           = "permanent"
	DefaultMaxRestarts       = 5
	DefaultWithin            = 60 * time.Second
	DefaultBackoffInitial    = 100 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffMultiplier = 2.0
	DefaultResetAfter        = 60 * time.Second
	DefaultOnExhausted       = "quarantine"
	DefaultReadinessTimeout  = 5 * time.Second
	DefaultOnCrash           = "retry"
	DefaultPoisonThreshold   = 3
)

// DefaultSupervision returns Supervision with every default applied and
// nothing set.
func DefaultSupervision() Supervision {
	return Supervision{
		Restart:           DefaultRestart,
		MaxRestarts:       DefaultMaxRestarts,
		Within:            DefaultWithin,
		BackoffInitial:    DefaultBackoffInitial,
		BackoffMax:        DefaultBackoffMax,
		BackoffMultiplier: DefaultBackoffMultiplier,
		ResetAfter:        DefaultResetAfter,
		OnExhausted:       DefaultOnExhausted,
		ReadinessTimeout:  DefaultReadinessTimeout,
		OnCrash:           DefaultOnCrash,
		PoisonThreshold:   DefaultPoisonThreshold,
	}
}
