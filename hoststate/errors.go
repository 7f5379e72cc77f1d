package hoststate

import (
	"errors"
	"fmt"
)

// Code is a host ABI v1 error code (docs/abi.md). Host functions return
// -Code to the guest. The values are frozen.
type Code int32

// Error codes, named after the arms of Astrid's WIT error-code variants.
const (
	CodeCapabilityDenied Code = 1
	CodeInvalidInput     Code = 2
	CodeClosed           Code = 3
	CodeRateLimited      Code = 4
	CodeQuota            Code = 5
	CodeTimeout          Code = 6
	CodeCancelled        Code = 7
	CodeNotFound         Code = 8
	CodeTooLarge         Code = 9
	CodeNotInLifecycle   Code = 10
	CodeCASMismatch      Code = 11
	CodeInternal         Code = 12
	CodeBackpressure     Code = 13
)

var codeNames = [...]string{
	CodeCapabilityDenied: "capability-denied",
	CodeInvalidInput:     "invalid-input",
	CodeClosed:           "closed",
	CodeRateLimited:      "rate-limited",
	CodeQuota:            "quota",
	CodeTimeout:          "timeout",
	CodeCancelled:        "cancelled",
	CodeNotFound:         "not-found",
	CodeTooLarge:         "too-large",
	CodeNotInLifecycle:   "not-in-lifecycle",
	CodeCASMismatch:      "cas-mismatch",
	CodeInternal:         "internal",
	CodeBackpressure:     "backpressure",
}

// String returns the ABI name of the code, e.g. "capability-denied".
func (c Code) String() string {
	if c > 0 && int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", int32(c))
}

// ParseCode maps an ABI error name back to its Code.
func ParseCode(name string) (Code, bool) {
	for i, n := range codeNames {
		if n == name && n != "" {
			return Code(i), true
		}
	}
	return 0, false
}

// Error is the error every State method returns: an ABI code plus a detail
// that is safe to show to the guest (no secrets, host paths or addresses).
type Error struct {
	Code   Code
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "hoststate: " + e.Code.String()
	}
	return "hoststate: " + e.Code.String() + ": " + e.Detail
}

// Is reports whether target is an *Error with the same code, so callers can
// write errors.Is(err, hoststate.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Detail == ""
}

// Sentinels for errors.Is; they carry no detail.
var (
	ErrCapabilityDenied = &Error{Code: CodeCapabilityDenied}
	ErrInvalidInput     = &Error{Code: CodeInvalidInput}
	ErrClosed           = &Error{Code: CodeClosed}
	ErrRateLimited      = &Error{Code: CodeRateLimited}
	ErrQuota            = &Error{Code: CodeQuota}
	ErrTimeout          = &Error{Code: CodeTimeout}
	ErrCancelled        = &Error{Code: CodeCancelled}
	ErrNotFound         = &Error{Code: CodeNotFound}
	ErrTooLarge         = &Error{Code: CodeTooLarge}
	ErrNotInLifecycle   = &Error{Code: CodeNotInLifecycle}
	ErrCASMismatch      = &Error{Code: CodeCASMismatch}
	ErrInternal         = &Error{Code: CodeInternal}
	ErrBackpressure     = &Error{Code: CodeBackpressure}
)

func errf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf extracts the ABI code from err; errors that are not *Error map to
// CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
