package sdk

import (
	"encoding/json"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// out is the reused buffer every data-producing host call writes into. It
// grows (and is filled with result_read) only when a result does not fit.
// Slices of it are valid until the next host call; the public functions copy
// what they return.
var out = make([]byte, 16<<10)

// outArgs returns the (ptr, cap) pair of the out buffer.
func outArgs() (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.SliceData(out)), uint32(len(out))
}

// str returns the (ptr, len) pair of s without copying it.
func str(s string) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

// buf returns the (ptr, len) pair of b.
func buf(b []byte) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))
}

// hostError builds the *Error for a negative return value, reading the
// host's detail from the result slot.
func hostError(n int64) *Error {
	e := &Error{Code: codeFromReturn(n)}
	if m := resultRead(outArgs()); m > 0 && m <= int64(len(out)) {
		e.Detail = string(out[:m])
	}
	return e
}

// status turns the return value of a host call that produces no data into
// an error.
func status(n int64) error {
	if n < 0 {
		return hostError(n)
	}
	return nil
}

// collect returns the n-byte result of a data-producing host call that was
// given the out buffer. If the result did not fit, the host kept it in the
// result slot: grow the out buffer and fetch it with result_read. The slice
// is valid until the next host call.
func collect(n int64) ([]byte, error) {
	if n < 0 {
		return nil, hostError(n)
	}
	if n <= int64(len(out)) {
		return out[:n], nil
	}
	out = make([]byte, (n+4095)&^4095)
	m := resultRead(outArgs())
	switch {
	case m < 0:
		return nil, hostError(m)
	case m != n:
		return nil, &Error{Code: Internal, Detail: fmt.Sprintf("sdk: result_read returned %d bytes, want %d", m, n)}
	}
	return out[:n], nil
}

// --- ipc ---

// Publish publishes payload, which must be valid JSON of at most 1 MiB, on
// topic. The topic must match a [publish] key of the manifest
// ([ErrCapabilityDenied] otherwise). The host stamps principal, attribution,
// source, sequence and time.
func Publish(topic string, payload []byte) error {
	tp, tl := str(topic)
	pp, pl := buf(payload)
	return status(ipcPublish(tp, tl, pp, pl))
}

// PublishJSON JSON-encodes v and publishes it on topic.
func PublishJSON(topic string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return &jsonError{op: "publish " + topic, err: err}
	}
	return Publish(topic, b)
}

// ReplyTo answers the message currently being handled (the last one received
// by a run loop, or the message of the current handler call) if its sender
// waits for a reply; [ErrNotFound] if there is none. payload must be valid
// JSON. No ACL applies: the requester chose to ask.
func ReplyTo(payload []byte) error {
	pp, pl := buf(payload)
	return status(ipcReply(pp, pl))
}

// Subscription is a subscription of the capsule, made with [Subscribe].
type Subscription struct {
	handle int64
}

// Subscribe subscribes to pattern, which must be covered by a [subscribe]
// key of the manifest ([ErrCapabilityDenied] otherwise). At most 128
// subscriptions, interceptor bindings included, may be live ([ErrQuota]).
func Subscribe(pattern string) (Subscription, error) {
	n := ipcSubscribe(str(pattern))
	if n < 0 {
		return Subscription{}, hostError(n)
	}
	return Subscription{handle: n}, nil
}

// Handle returns the subscription's host handle, as found in
// [Envelope.Handle].
func (s Subscription) Handle() int64 { return s.handle }

// Close unsubscribes. Messages already queued for the subscription are
// dropped.
func (s Subscription) Close() error {
	return status(ipcUnsubscribe(s.handle))
}

// Recv waits up to timeout (at most 60 s, the host clamps) for the next
// message on s. It fails with [ErrTimeout] when nothing arrived, and with
// [ErrCancelled] or [ErrClosed] when the capsule is stopping: a run loop
// should then return nil. Receiving a message installs its invocation
// context: KV is scoped to its principal and [ReplyTo] answers it.
func (s Subscription) Recv(timeout time.Duration) (Envelope, error) {
	return recv(s.handle, timeout)
}

// Poll returns the next queued message on s without blocking; ok is false
// when nothing is queued.
func (s Subscription) Poll() (env Envelope, ok bool, err error) {
	return poll(s.handle)
}

// Recv is [Subscription.Recv] on all subscriptions of the capsule (handle 0),
// including interceptor bindings of a run-loop capsule, whose envelopes carry
// [Envelope.Action].
func Recv(timeout time.Duration) (Envelope, error) {
	return recv(0, timeout)
}

// Poll is [Subscription.Poll] on all subscriptions of the capsule.
func Poll() (env Envelope, ok bool, err error) {
	return poll(0)
}

func recv(handle int64, timeout time.Duration) (Envelope, error) {
	ms := timeout.Milliseconds()
	if ms <= 0 && timeout > 0 {
		ms = 1
	}
	ms = max(ms, 0)
	p, c := outArgs()
	b, err := collect(ipcRecv(handle, ms, p, c))
	if err != nil {
		// Nothing to do now, so giving the GC a turn costs nothing; a loop
		// that only ever times out must still let the GC run.
		runtime.Gosched()
		return Envelope{}, err
	}
	yieldSometimes()
	return decodeEnvelope(b)
}

func poll(handle int64) (Envelope, bool, error) {
	p, c := outArgs()
	b, err := collect(ipcPoll(handle, p, c))
	if err != nil || len(b) == 0 {
		runtime.Gosched() // idle or failing: see recv
		return Envelope{}, false, err
	}
	yieldSometimes()
	env, err := decodeEnvelope(b)
	return env, err == nil, err
}

// Subscription returns the subscription of the binding, to receive only its
// messages in a run loop (the host delivers interceptor messages of a
// run-loop capsule through recv). Closing it fails with [ErrInvalidInput]:
// bindings cannot be unsubscribed.
func (b Binding) Subscription() Subscription { return Subscription{handle: b.HandleID} }

// InterceptorBindings returns the capsule's interceptor bindings, the
// [subscribe] entries with a handler that the host subscribed for it.
func InterceptorBindings() ([]Binding, error) {
	b, err := collect(ipcInterceptorBindings(outArgs()))
	if err != nil {
		return nil, err
	}
	var bs []Binding
	if err := json.Unmarshal(b, &bs); err != nil {
		return nil, &jsonError{op: "decode bindings", err: err}
	}
	return bs, nil
}

// --- kv ---
//
// Keys are UTF-8 without control characters, 1-256 bytes; values are at most
// 1 MiB. Every key is scoped by the host to the invoking principal of the
// message being handled (else the capsule owner) and to this capsule.

// KVGet returns the value of key, or [ErrNotFound].
func KVGet(key string) ([]byte, error) {
	kp, kl := str(key)
	op, oc := outArgs()
	b, err := collect(kvGet(kp, kl, op, oc))
	if err != nil {
		return nil, err
	}
	return append([]byte{}, b...), nil
}

// KVSet sets key to value.
func KVSet(key string, value []byte) error {
	kp, kl := str(key)
	vp, vl := buf(value)
	return status(kvSet(kp, kl, vp, vl))
}

// KVDelete deletes key; deleting a missing key is not an error.
func KVDelete(key string) error {
	return status(kvDelete(str(key)))
}

// KVListKeys returns the keys starting with prefix, sorted. More than 1024
// keys fail with [ErrTooLarge].
func KVListKeys(prefix string) ([]string, error) {
	pp, pl := str(prefix)
	op, oc := outArgs()
	b, err := collect(kvListKeys(pp, pl, op, oc))
	if err != nil {
		return nil, err
	}
	keys := []string{}
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, &jsonError{op: "decode keys", err: err}
	}
	return keys, nil
}

// casAbsent is the expected_len meaning "create only if absent".
const casAbsent = ^uint32(0)

// KVCAS sets key to newValue if its current value equals expected. A nil
// expected means the key must be absent (an empty non-nil slice means it must
// hold the empty value). It fails with [ErrCASMismatch] otherwise.
func KVCAS(key string, expected, newValue []byte) error {
	kp, kl := str(key)
	ep, el := buf(expected)
	if expected == nil {
		ep, el = nil, casAbsent
	}
	np, nl := buf(newValue)
	return status(kvCAS(kp, kl, ep, el, np, nl))
}

// KVClearPrefix deletes every key starting with prefix and returns how many
// it deleted.
func KVClearPrefix(prefix string) (int, error) {
	n := kvClearPrefix(str(prefix))
	if n < 0 {
		return 0, hostError(n)
	}
	return int(n), nil
}

// KVGetJSON reads key and JSON-decodes its value into v; [ErrNotFound] when
// the key is missing.
func KVGetJSON(key string, v any) error {
	kp, kl := str(key)
	op, oc := outArgs()
	b, err := collect(kvGet(kp, kl, op, oc))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &jsonError{op: "decode " + key, err: err}
	}
	return nil
}

// KVSetJSON JSON-encodes v and stores it under key.
func KVSetJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return &jsonError{op: "encode " + key, err: err}
	}
	return KVSet(key, b)
}

// --- sys ---

// Log writes msg to the capsule's log at level (truncated at 64 KiB by the
// host). Logging never fails the caller; a host error is ignored.
func Log(level Level, msg string) {
	mp, ml := str(msg)
	_ = sysLog(int32(level), mp, ml)
}

// Debugf logs a formatted message at [LevelDebug].
func Debugf(format string, args ...any) { Log(LevelDebug, fmt.Sprintf(format, args...)) }

// Infof logs a formatted message at [LevelInfo].
func Infof(format string, args ...any) { Log(LevelInfo, fmt.Sprintf(format, args...)) }

// Warnf logs a formatted message at [LevelWarn].
func Warnf(format string, args ...any) { Log(LevelWarn, fmt.Sprintf(format, args...)) }

// Errorf logs a formatted message at [LevelError].
func Errorf(format string, args ...any) { Log(LevelError, fmt.Sprintf(format, args...)) }

// Config returns the value of the [env] key of the manifest, as a string.
// found is false (with a nil error) when the key is unset and has no default.
func Config(key string) (value string, found bool, err error) {
	kp, kl := str(key)
	op, oc := outArgs()
	b, err := collect(sysGetConfig(kp, kl, op, oc))
	switch {
	case err == nil:
		return string(b), true, nil
	case codeOf(err) == NotFound:
		return "", false, nil
	default:
		return "", false, err
	}
}

// ClockMs returns the host's wall clock in Unix milliseconds.
func ClockMs() int64 {
	return sysClockMs()
}

// maxSleep is the longest sys_sleep_ns the host honours in one call.
const maxSleep = 60 * time.Second

// Sleep blocks for d, in host sleeps of at most 60 s each. It returns
// [ErrCancelled] early when the capsule is stopping. Prefer it to
// time.Sleep, which blocks the capsule's actor without being cancellable.
func Sleep(d time.Duration) error {
	for d > 0 {
		step := min(d, maxSleep)
		if err := status(sysSleepNs(int64(step))); err != nil {
			return err
		}
		d -= step
	}
	return nil
}

// RandomBytes returns n bytes from the host's crypto/rand. n is at most 4096
// ([ErrTooLarge] otherwise).
func RandomBytes(n int) ([]byte, error) {
	if n < 0 {
		return nil, &Error{Code: InvalidInput, Detail: "sdk: negative length"}
	}
	b := make([]byte, n)
	if n == 0 {
		return b, nil
	}
	if err := status(sysRandomBytes(unsafe.Pointer(&b[0]), uint32(n))); err != nil {
		return nil, err
	}
	return b, nil
}

// SignalReady tells the host that the run loop has subscribed and is ready:
// capsules that depend on this one start only after it.
func SignalReady() error {
	return status(sysSignalReady())
}

// codeOf returns the code of a host *Error, or 0.
func codeOf(err error) Code {
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	return 0
}
