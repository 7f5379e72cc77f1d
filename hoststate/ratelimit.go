package hoststate

import "time"

// RateLimiter is Astrid's IpcRateLimiter: a fixed one-second window of bytes
// per principal, keyed within one capsule (so the key is effectively
// (capsule, principal)).
//
// # Concurrency
//
// Not goroutine-safe; owned by the State that uses it.
type RateLimiter struct {
	limit   int
	windows map[string]*window
}

type window struct {
	start time.Time
	used  int
}

// NewRateLimiter returns a limiter allowing limit bytes per second per
// principal; limit <= 0 means DefaultIPCBytesPerSecond.
func NewRateLimiter(limit int) *RateLimiter {
	if limit <= 0 {
		limit = DefaultIPCBytesPerSecond
	}
	return &RateLimiter{limit: limit, windows: map[string]*window{}}
}

// Limit returns the bytes-per-second ceiling.
func (r *RateLimiter) Limit() int { return r.limit }

// Allow charges n bytes to principal at time now and reports whether the
// budget of the current window allows it. A refused call charges nothing.
func (r *RateLimiter) Allow(principal string, n int, now time.Time) bool {
	return r.AllowN(principal, n, r.limit, now)
}

// AllowN is Allow with an explicit limit (the invoking principal's
// profile); limit <= 0 means the limiter's own.
func (r *RateLimiter) AllowN(principal string, n, limit int, now time.Time) bool {
	if limit <= 0 {
		limit = r.limit
	}
	w := r.windows[principal]
	if w == nil {
		if len(r.windows) >= 10000 {
			r.evict(now)
		}
		w = &window{start: now}
		r.windows[principal] = w
	}
	if now.Sub(w.start) >= time.Second {
		w.start = now
		w.used = 0
	}
	if w.used+n > limit {
		return false
	}
	w.used += n
	return true
}

// evict drops windows that have expired, bounding memory when many
// principals pass through one capsule.
func (r *RateLimiter) evict(now time.Time) {
	for p, w := range r.windows {
		if now.Sub(w.start) >= time.Second {
			delete(r.windows, p)
		}
	}
}
