package sdk

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodeString(t *testing.T) {
	tests := []struct {
		code Code
		want string
	}{
		{CapabilityDenied, "capability-denied"},
		{InvalidInput, "invalid-input"},
		{Closed, "closed"},
		{RateLimited, "rate-limited"},
		{Quota, "quota"},
		{Timeout, "timeout"},
		{Cancelled, "cancelled"},
		{NotFound, "not-found"},
		{TooLarge, "too-large"},
		{NotInLifecycle, "not-in-lifecycle"},
		{CASMismatch, "cas-mismatch"},
		{Internal, "internal"},
		{Backpressure, "backpressure"},
		{0, "code(0)"},
		{14, "code(14)"},
		{-1, "code(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.code.String(); got != tt.want {
				t.Errorf("Code(%d).String() = %q, want %q", int32(tt.code), got, tt.want)
			}
		})
	}
}

// TestCodeValues pins the numeric codes of docs/abi.md, which are stable
// forever.
func TestCodeValues(t *testing.T) {
	want := []Code{CapabilityDenied, InvalidInput, Closed, RateLimited, Quota, Timeout, Cancelled,
		NotFound, TooLarge, NotInLifecycle, CASMismatch, Internal, Backpressure}
	for i, c := range want {
		if int(c) != i+1 {
			t.Errorf("%s = %d, want %d", c, int(c), i+1)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"with detail", &Error{Code: CapabilityDenied, Detail: "topic x.y not in [publish]"}, "astrid: capability-denied: topic x.y not in [publish]"},
		{"without detail", &Error{Code: Timeout}, "astrid: timeout"},
		{"unknown code", &Error{Code: 77, Detail: "?"}, "astrid: code(77): ?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	sentinels := map[Code]error{
		CapabilityDenied: ErrCapabilityDenied, InvalidInput: ErrInvalidInput, Closed: ErrClosed,
		RateLimited: ErrRateLimited, Quota: ErrQuota, Timeout: ErrTimeout, Cancelled: ErrCancelled,
		NotFound: ErrNotFound, TooLarge: ErrTooLarge, NotInLifecycle: ErrNotInLifecycle,
		CASMismatch: ErrCASMismatch, Internal: ErrInternal, Backpressure: ErrBackpressure,
	}
	for code, sentinel := range sentinels {
		err := fmt.Errorf("wrapped: %w", &Error{Code: code, Detail: "some detail"})
		for other, s := range sentinels {
			if got, want := errors.Is(err, s), other == code; got != want {
				t.Errorf("errors.Is(%s error, %v) = %v, want %v", code, s, got, want)
			}
		}
		if !errors.Is(sentinel, sentinel) {
			t.Errorf("sentinel %v is not itself", sentinel)
		}
	}
	if errors.Is(errors.New("astrid: not-found"), ErrNotFound) {
		t.Error("a plain error with the same text matched ErrNotFound")
	}
}

func TestCodeFromReturn(t *testing.T) {
	tests := []struct {
		n    int64
		want Code
	}{
		{-1, CapabilityDenied},
		{-8, NotFound},
		{-13, Backpressure},
		{-99, 99},
		{0, Internal},             // not a failure: never passed, but must not panic
		{-(1 << 40), Internal},    // out of int32 range
		{-(1<<31 - 1), 1<<31 - 1}, // largest representable
	}
	for _, tt := range tests {
		if got := codeFromReturn(tt.n); got != tt.want {
			t.Errorf("codeFromReturn(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}
