package hoststate

// Profile is a principal's quota profile (<data>/profiles/<principal>.toml
// on a node). Zero fields mean the default's value.
type Profile struct {
	// IPCBytesPerSec is the publish budget per (capsule, principal) in a
	// fixed one-second window (rate-limited when exceeded).
	IPCBytesPerSec int `toml:"ipc_bytes_per_sec" json:"ipc_bytes_per_sec"`
	// MaxSubscriptions caps live subscriptions per capsule (quota), never
	// above MaxSubscriptions.
	MaxSubscriptions int `toml:"max_subscriptions" json:"max_subscriptions"`
	// MaxInFlight caps the messages of one principal queued or running at
	// one capsule, so one principal cannot fill a shared capsule's mailbox
	// (quota).
	MaxInFlight int `toml:"max_in_flight_calls" json:"max_in_flight_calls"`
	// KVStorageBytes caps the bytes of keys and values one principal keeps
	// in one capsule's KV namespace (quota).
	KVStorageBytes int64 `toml:"kv_storage_bytes" json:"kv_storage_bytes"`
	// MemoryPages caps the linear memory of capsules loaded for this
	// principal (64 KiB pages).
	MemoryPages uint32 `toml:"memory_pages" json:"memory_pages"`
}

// DefaultProfile is the profile of principals without one, and the
// fallback for calls with no invoking principal (never the capsule owner's:
// that would lend the owner's quotas to every unauthenticated path).
func DefaultProfile() Profile {
	return Profile{
		IPCBytesPerSec:   DefaultIPCBytesPerSecond,
		MaxSubscriptions: MaxSubscriptions,
		MaxInFlight:      256,
		KVStorageBytes:   64 << 20,
		MemoryPages:      1024,
	}
}

// WithDefaults returns p with zero fields taken from d.
func (p Profile) WithDefaults(d Profile) Profile {
	if p.IPCBytesPerSec <= 0 {
		p.IPCBytesPerSec = d.IPCBytesPerSec
	}
	if p.MaxSubscriptions <= 0 {
		p.MaxSubscriptions = d.MaxSubscriptions
	}
	if p.MaxInFlight <= 0 {
		p.MaxInFlight = d.MaxInFlight
	}
	if p.KVStorageBytes <= 0 {
		p.KVStorageBytes = d.KVStorageBytes
	}
	if p.MemoryPages == 0 {
		p.MemoryPages = d.MemoryPages
	}
	return p
}

// Profiles resolves a principal's profile; "" means the default profile.
// Implementations must be goroutine-safe and cheap (called per publish).
type Profiles interface {
	Profile(principal string) Profile
}

// QuotaEvent reports a refused call: which quota, for whom, and the limit.
type QuotaEvent struct {
	Capsule   string `json:"capsule"`
	Principal string `json:"principal"`
	Quota     string `json:"quota"` // ipc_bytes_per_sec, max_subscriptions, kv_storage_bytes, max_in_flight_calls
	Limit     int64  `json:"limit"`
}

// ConfigStore holds stored (non-secret) [env] values per principal, with a
// shared scope as fallback.
type ConfigStore interface {
	Get(principal, capsule, key string) (string, bool)
	Set(principal, capsule, key, value string) error
}

// effectiveProfile is the invoking principal's profile, or the default
// profile when no principal is invoking.
func (s *State) effectiveProfile() Profile {
	if s.profiles == nil {
		p := DefaultProfile()
		p.IPCBytesPerSec = s.limiter.Limit() // Config.IPCBytesPerSecond
		return p
	}
	if s.caller != nil && s.caller.Principal != "" && s.EffectivePrincipal() == s.caller.Principal {
		return s.profiles.Profile(s.caller.Principal)
	}
	return s.profiles.Profile("")
}

func (s *State) quotaExceeded(quota string, limit int64) {
	if s.onQuota != nil {
		s.onQuota(QuotaEvent{Capsule: s.capsuleID, Principal: s.EffectivePrincipal(), Quota: quota, Limit: limit})
	}
}
