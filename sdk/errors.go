package sdk

import "strconv"

// Code is an error code of the host ABI, named after the arms of Astrid's WIT
// error-code variant. Values are stable forever (docs/abi.md).
type Code int32

// The error codes of host ABI v1.
const (
	// CapabilityDenied: topic outside the [publish]/[subscribe] ACL.
	CapabilityDenied Code = 1
	// InvalidInput: bad pointer or length, payload not JSON, bad topic or key.
	InvalidInput Code = 2
	// Closed: the capsule is unloading or the subscription handle is closed.
	Closed Code = 3
	// RateLimited: the IPC byte budget of (capsule, principal) is exhausted.
	RateLimited Code = 4
	// Quota: too many subscriptions, storage quota, in-flight calls.
	Quota Code = 5
	// Timeout: a blocking call waited its whole timeout.
	Timeout Code = 6
	// Cancelled: a blocking call was interrupted by stop, unload or cancel.
	Cancelled Code = 7
	// NotFound: missing KV key, config key or unknown handle.
	NotFound Code = 8
	// TooLarge: a topic, payload, key, value or key list over its limit.
	TooLarge Code = 9
	// NotInLifecycle: a lifecycle-only call outside install/upgrade.
	NotInLifecycle Code = 10
	// CASMismatch: the expected value of a compare-and-swap differs.
	CASMismatch Code = 11
	// Internal: a host-side failure; the detail says more.
	Internal Code = 12
	// Backpressure: the destination's mailbox is full and rejects.
	Backpressure Code = 13
)

var codeNames = [...]string{
	CapabilityDenied: "capability-denied",
	InvalidInput:     "invalid-input",
	Closed:           "closed",
	RateLimited:      "rate-limited",
	Quota:            "quota",
	Timeout:          "timeout",
	Cancelled:        "cancelled",
	NotFound:         "not-found",
	TooLarge:         "too-large",
	NotInLifecycle:   "not-in-lifecycle",
	CASMismatch:      "cas-mismatch",
	Internal:         "internal",
	Backpressure:     "backpressure",
}

// String returns the ABI name of c ("capability-denied"), or "code(N)" for a
// code this SDK does not know.
func (c Code) String() string {
	if c > 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Error is a failure reported by a host function: the ABI error code and the
// host's detail (read with result_read right after the failed call).
type Error struct {
	// Code is the ABI error code.
	Code Code
	// Detail is the host's human-readable explanation; it may be empty.
	Detail string
}

// Error formats e as "astrid: <code>: <detail>", or "astrid: <code>" when
// there is no detail.
func (e *Error) Error() string {
	if e.Detail == "" {
		return "astrid: " + e.Code.String()
	}
	return "astrid: " + e.Code.String() + ": " + e.Detail
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, sdk.ErrNotFound) holds whatever the detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, one per code, for use with errors.Is.
var (
	ErrCapabilityDenied = &Error{Code: CapabilityDenied}
	ErrInvalidInput     = &Error{Code: InvalidInput}
	ErrClosed           = &Error{Code: Closed}
	ErrRateLimited      = &Error{Code: RateLimited}
	ErrQuota            = &Error{Code: Quota}
	ErrTimeout          = &Error{Code: Timeout}
	ErrCancelled        = &Error{Code: Cancelled}
	ErrNotFound         = &Error{Code: NotFound}
	ErrTooLarge         = &Error{Code: TooLarge}
	ErrNotInLifecycle   = &Error{Code: NotInLifecycle}
	ErrCASMismatch      = &Error{Code: CASMismatch}
	ErrInternal         = &Error{Code: Internal}
	ErrBackpressure     = &Error{Code: Backpressure}
)

// codeFromReturn turns a negative host return value into its code.
func codeFromReturn(n int64) Code {
	if n >= 0 || n < -int64(^uint32(0)>>1) {
		return Internal
	}
	return Code(-n)
}
