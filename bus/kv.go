package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// KV limits and defaults.
const (
	// DefaultKVBucket is the bucket OpenKV uses when KVConfig.Bucket is empty.
	DefaultKVBucket = "astrid_kv"
	// MaxKeyBytes is the longest key (and prefix), in bytes.
	MaxKeyBytes = 256
	// MaxValueBytes is the largest value, in bytes.
	MaxValueBytes = 1 << 20
	// DefaultKVTimeout bounds a KV call when ctx has no deadline.
	DefaultKVTimeout = 5 * time.Second
)

// KVConfig configures the capsule KV bucket.
type KVConfig struct {
	// Bucket is the JetStream KV bucket name; "" means DefaultKVBucket.
	Bucket string
	// Replicas is the bucket's replica count in a cluster; 0 means 1.
	Replicas int
	// Storage is file (the zero value) or memory.
	Storage jetstream.StorageType
}

// KeyError reports a KV key or prefix that cannot be stored. TooLarge
// distinguishes the ABI's too-large (over MaxKeyBytes) from invalid-input.
//
// errors.Is(err, ErrInvalidKey) holds for every KeyError, and
// errors.Is(err, ErrTooLarge) holds when TooLarge is set.
type KeyError struct {
	// Key is the offending key or prefix.
	Key string
	// Reason says what is wrong, in lower case.
	Reason string
	// TooLarge is set when the key is longer than MaxKeyBytes.
	TooLarge bool
}

// Error implements error.
func (e *KeyError) Error() string {
	k := e.Key
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return "bus: invalid kv key " + strconv.Quote(k) + ": " + e.Reason
}

// Is reports whether target is ErrInvalidKey, or ErrTooLarge for a key
// that is too long.
func (e *KeyError) Is(target error) bool {
	return target == ErrInvalidKey || (e.TooLarge && target == ErrTooLarge)
}

// checkKey validates a key (prefix allows the empty string).
func checkKey(key string, prefix bool) error {
	if key == "" {
		if prefix {
			return nil
		}
		return &KeyError{Key: key, Reason: "empty"}
	}
	if len(key) > MaxKeyBytes {
		return &KeyError{Key: key, Reason: "longer than 256 bytes", TooLarge: true}
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == 0x7f {
			return &KeyError{Key: key, Reason: "contains a control character"}
		}
		if key[i] >= utf8.RuneSelf {
			// Rare path: check the rest rune by rune.
			rest := key[i:]
			if !utf8.ValidString(rest) {
				return &KeyError{Key: key, Reason: "not valid UTF-8"}
			}
			for _, r := range rest {
				if unicode.IsControl(r) {
					return &KeyError{Key: key, Reason: "contains a control character"}
				}
			}
			return nil
		}
	}
	return nil
}

const hexDigits = "0123456789ABCDEF"

// escapeAppend appends s escaped into the NATS key alphabet: bytes of
// [A-Za-z0-9_-] stay, every other byte becomes "=HH" (upper-case hex).
// The code is prefix-free, so escape(p) is a prefix of escape(k) exactly
// when p is a prefix of k, and the result never contains a dot.
func escapeAppend(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '=', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return b
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape reverses escapeAppend.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '=') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bus: kv: bad escape in %q", s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bus: kv: bad escape in %q", s)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

// appendNamespace appends the token path of namespace ns: each
// ':'-separated part escaped, joined by dots. So "alice:capsule:counter"
// becomes "alice.capsule.counter".
func appendNamespace(b []byte, ns string) ([]byte, error) {
	if ns == "" || len(ns) > 2*MaxKeyBytes {
		return nil, fmt.Errorf("%w: %q", ErrInvalidNamespace, ns)
	}
	for {
		part, rest, more := strings.Cut(ns, ":")
		if part == "" {
			return nil, fmt.Errorf("%w: %q has an empty part", ErrInvalidNamespace, ns)
		}
		b = escapeAppend(b, part)
		if !more {
			return b, nil
		}
		b = append(b, '.')
		ns = rest
	}
}

// kvKey returns the bucket key for key in namespace ns.
func kvKey(ns, key string) (string, error) {
	if err := checkKey(key, false); err != nil {
		return "", err
	}
	var buf [256]byte
	b, err := appendNamespace(buf[:0], ns)
	if err != nil {
		return "", err
	}
	b = append(b, '.')
	b = escapeAppend(b, key)
	return string(b), nil
}

// KV is the capsule key-value store on a JetStream KV bucket, with every
// key scoped to a namespace "{principal}:capsule:{capsule_id}".
//
// # Layout
//
// Namespace parts and the key are escaped ([A-Za-z0-9_-] kept, any other
// byte as "=HH") and joined by dots: key "a.b c" of "alice:capsule:notes"
// is stored as "alice.capsule.notes.a=2Eb=20c". Each escaped key is one
// token, so the filter "alice.capsule.notes.*" selects exactly that
// namespace; listing never scans other namespaces.
//
// # Concurrency
//
// A KV is safe for concurrent use.
type KV struct {
	kv jetstream.KeyValue
	// leader, for a replicated bucket, reads keys through the stream
	// leader (kvcluster.go); subj is the bucket's subject prefix.
	leader jetstream.Stream
	subj   string
}

// OpenKV creates the bucket, or updates its configuration if it exists
// (history 1, values up to MaxValueBytes, file storage by default). A
// replicated bucket (Replicas > 1) reads through its stream leader, so a
// value written through one node is read back through any other.
func OpenKV(ctx context.Context, c *Conn, cfg KVConfig) (*KV, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultKVBucket
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       cfg.Bucket,
		Description:  "astrid capsule key-value store",
		History:      1,
		MaxValueSize: MaxValueBytes,
		Storage:      cfg.Storage,
		Replicas:     cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: open kv %s: %w", cfg.Bucket, err)
	}
	k := &KV{kv: kv}
	if cfg.Replicas > 1 {
		if err := k.readFromLeader(ctx, c.js, cfg.Bucket); err != nil {
			return nil, fmt.Errorf("bus: open kv %s: %w", cfg.Bucket, err)
		}
	}
	return k, nil
}

// Bucket returns the underlying JetStream KV bucket, an escape hatch for
// benchmarks and tools.
func (k *KV) Bucket() jetstream.KeyValue { return k.kv }

func noop() {}

// withTimeout adds DefaultKVTimeout to a ctx without a deadline.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, noop
	}
	return context.WithTimeout(ctx, DefaultKVTimeout)
}

func kvErr(op string, err error) error {
	return fmt.Errorf("bus: kv %s: %w", op, err)
}

// Get returns the value and revision of key in ns, or ErrKeyNotFound.
func (k *KV) Get(ctx context.Context, ns, key string) ([]byte, uint64, error) {
	sk, err := kvKey(ns, key)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := k.get(ctx, sk)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, ErrKeyNotFound
		}
		return nil, 0, kvErr("get", err)
	}
	return e.Value(), e.Revision(), nil
}

func checkValue(val []byte) error {
	if len(val) > MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes; the limit is %d", ErrTooLarge, len(val), MaxValueBytes)
	}
	return nil
}

// Put stores val under key in ns and returns the new revision.
func (k *KV) Put(ctx context.Context, ns, key string, val []byte) (uint64, error) {
	sk, err := kvKey(ns, key)
	if err != nil {
		return 0, err
	}
	if err := checkValue(val); err != nil {
		return 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	rev, err := k.kv.Put(ctx, sk, val)
	if err != nil {
		return 0, kvErr("put", err)
	}
	return rev, nil
}

// Delete removes key from ns. Deleting a missing key is not an error.
func (k *KV) Delete(ctx context.Context, ns, key string) error {
	sk, err := kvKey(ns, key)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := k.kv.Delete(ctx, sk); err != nil {
		return kvErr("delete", err)
	}
	return nil
}

// CAS sets key in ns to val if its current value equals expected (or, with
// expectAbsent, if the key does not exist), and returns the new revision.
// Otherwise it returns ErrCASMismatch. It is built on JetStream revisions:
// a create for an absent key, and otherwise an update conditional on the
// revision whose value was compared; a concurrent write between the read
// and the update is retried once, then reported as a mismatch.
func (k *KV) CAS(ctx context.Context, ns, key string, expected []byte, expectAbsent bool, val []byte) (uint64, error) {
	sk, err := kvKey(ns, key)
	if err != nil {
		return 0, err
	}
	if err := checkValue(val); err != nil {
		return 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if expectAbsent {
		rev, err := k.kv.Create(ctx, sk, val)
		switch {
		case err == nil:
			return rev, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			return 0, ErrCASMismatch
		default:
			return 0, kvErr("cas", err)
		}
	}
	for range 2 {
		e, err := k.get(ctx, sk)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, ErrCASMismatch
		}
		if err != nil {
			return 0, kvErr("cas", err)
		}
		if !bytes.Equal(e.Value(), expected) {
			return 0, ErrCASMismatch
		}
		rev, err := k.kv.Update(ctx, sk, val, e.Revision())
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, kvErr("cas", err)
		}
	}
	return 0, ErrCASMismatch
}

// scan calls fn for every live entry of namespace ns whose escaped key
// starts with escPrefix, until fn returns false. Values are fetched only
// when withValues is set.
func (k *KV) scan(ctx context.Context, ns, escPrefix string, withValues bool, fn func(token string, e jetstream.KeyValueEntry) bool) error {
	b, err := appendNamespace(make([]byte, 0, 64), ns)
	if err != nil {
		return err
	}
	nsLen := len(b) + 1
	filter := string(append(b, ".*"...))
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if !withValues {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := k.kv.WatchFiltered(ctx, []string{filter}, opts...)
	if err != nil {
		return err
	}
	defer func() {
		_ = w.Stop()
		// A watcher callback blocked on a full channel would leak; after
		// Stop no new callback starts, so emptying the channel frees it.
		for {
			select {
			case _, ok := <-w.Updates():
				if !ok {
					return
				}
			default:
				return
			}
		}
	}()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				return nil // all current entries seen
			}
			key := e.Key()
			if len(key) < nsLen {
				continue
			}
			token := key[nsLen:]
			if !strings.HasPrefix(token, escPrefix) {
				continue
			}
			if !fn(token, e) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// matching returns the escaped key tokens in ns that start with prefix,
// failing with ErrTooManyKeys past limit (limit <= 0: no limit).
func (k *KV) matching(ctx context.Context, ns, prefix string, limit int) ([]string, error) {
	if err := checkKey(prefix, true); err != nil {
		return nil, err
	}
	escPrefix := string(escapeAppend(nil, prefix))
	var tokens []string
	tooMany := false
	err := k.scan(ctx, ns, escPrefix, false, func(token string, _ jetstream.KeyValueEntry) bool {
		if limit > 0 && len(tokens) == limit {
			tooMany = true
			return false
		}
		tokens = append(tokens, token)
		return true
	})
	if err != nil {
		return nil, err
	}
	if tooMany {
		return nil, fmt.Errorf("%w: more than %d keys match %q", ErrTooManyKeys, limit, prefix)
	}
	return tokens, nil
}

// Keys returns the keys of ns that start with prefix ("" for all), sorted
// by bytes. If more than limit keys match it returns ErrTooManyKeys;
// limit <= 0 means no limit. Only ns's own keys are read (a subject
// filter on the namespace's token path).
func (k *KV) Keys(ctx context.Context, ns, prefix string, limit int) ([]string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	tokens, err := k.matching(ctx, ns, prefix, limit)
	if err != nil {
		if errors.Is(err, ErrTooManyKeys) || errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrInvalidNamespace) {
			return nil, err
		}
		return nil, kvErr("keys", err)
	}
	keys := make([]string, 0, len(tokens))
	for _, t := range tokens {
		key, err := unescape(t)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // a key rewritten during the listing can repeat
	return keys, nil
}

// ClearPrefix deletes every key of ns that starts with prefix ("" for all)
// and returns how many it deleted. Keys written concurrently may survive.
func (k *KV) ClearPrefix(ctx context.Context, ns, prefix string) (int, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	tokens, err := k.matching(ctx, ns, prefix, 0)
	if err != nil {
		if errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrInvalidNamespace) {
			return 0, err
		}
		return 0, kvErr("clear prefix", err)
	}
	slices.Sort(tokens)
	tokens = slices.Compact(tokens)
	b, _ := appendNamespace(make([]byte, 0, 64), ns) // validated by matching
	base := string(append(b, '.'))
	n := 0
	for _, t := range tokens {
		if err := k.kv.Delete(ctx, base+t); err != nil {
			return n, kvErr("clear prefix", err)
		}
		n++
	}
	return n, nil
}

// Usage returns the bytes stored in ns: the sum of key lengths (unescaped)
// and value lengths of its live keys. It reads every value of the
// namespace, so it is meant for load time and audits; quota enforcement
// should keep a running figure.
func (k *KV) Usage(ctx context.Context, ns string) (int64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	// A key rewritten during the scan can be seen twice; keep its latest size.
	sizes := make(map[string]int)
	var bad error
	err := k.scan(ctx, ns, "", true, func(token string, e jetstream.KeyValueEntry) bool {
		key, err := unescape(token)
		if err != nil {
			bad = err
			return false
		}
		sizes[key] = len(key) + len(e.Value())
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		if errors.Is(err, ErrInvalidNamespace) {
			return 0, err
		}
		return 0, kvErr("usage", err)
	}
	var total int64
	for _, n := range sizes {
		total += int64(n)
	}
	return total, nil
}
