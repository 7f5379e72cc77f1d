package bus

import "errors"

// Sentinel errors. Functions wrap them with detail; compare with errors.Is.
var (
	// ErrInvalidTopic matches every *TopicError.
	ErrInvalidTopic = errors.New("bus: invalid topic")
	// ErrTooLarge matches errors for a topic, KV key or KV value over its
	// size limit (the ABI's too-large).
	ErrTooLarge = errors.New("bus: too large")
	// ErrInvalidAttribution is returned by ParseAttribution.
	ErrInvalidAttribution = errors.New("bus: invalid attribution")
	// ErrWeakKey is returned by NewStamper for a node key shorter than
	// MinKeyBytes.
	ErrWeakKey = errors.New("bus: node key too short")
	// ErrNoResponders is returned by Request when nobody subscribes to the
	// subject. The error also matches nats.ErrNoResponders.
	ErrNoResponders = errors.New("bus: no responders")
	// ErrTimeout is returned by Request when no reply arrives in time. The
	// error also matches the underlying context or nats timeout error.
	ErrTimeout = errors.New("bus: timeout")
	// ErrClosed is returned when the connection is closed.
	ErrClosed = errors.New("bus: connection closed")
	// ErrServerStart is returned by StartServer when the embedded server
	// fails to start or become ready.
	ErrServerStart = errors.New("bus: embedded server failed to start")

	// ErrKeyNotFound is returned by KV.Get for a missing key.
	ErrKeyNotFound = errors.New("bus: key not found")
	// ErrCASMismatch is returned by KV.CAS when the current value is not
	// the expected one.
	ErrCASMismatch = errors.New("bus: cas mismatch")
	// ErrTooManyKeys is returned by KV.Keys when more keys match than the
	// limit allows.
	ErrTooManyKeys = errors.New("bus: too many keys")
	// ErrInvalidKey matches every *KeyError.
	ErrInvalidKey = errors.New("bus: invalid key")
	// ErrInvalidNamespace is returned for a KV namespace that cannot be
	// mapped (empty, or with an empty ':'-separated part).
	ErrInvalidNamespace = errors.New("bus: invalid kv namespace")
)
