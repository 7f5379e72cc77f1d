package hoststate

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	type step struct {
		principal string
		n         int
		at        time.Duration
		want      bool
	}
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{"fills the window exactly", 100, []step{
			{"a", 60, 0, true}, {"a", 40, 10 * time.Millisecond, true}, {"a", 1, 20 * time.Millisecond, false},
		}},
		{"refusal charges nothing", 100, []step{
			{"a", 90, 0, true}, {"a", 20, 0, false}, {"a", 20, 0, false}, {"a", 10, 0, true}, {"a", 1, 0, false},
		}},
		{"window resets after one second", 100, []step{
			{"a", 100, 0, true}, {"a", 1, 999 * time.Millisecond, false}, {"a", 100, time.Second, true},
			{"a", 1, time.Second + time.Millisecond, false},
		}},
		{"per principal", 100, []step{
			{"a", 100, 0, true}, {"b", 100, 0, true}, {"a", 1, 0, false}, {"b", 1, 0, false}, {"c", 1, 0, true},
		}},
		{"larger than the limit never passes", 100, []step{
			{"a", 101, 0, false}, {"a", 100, 0, true},
		}},
		{"zero limit means the default", 0, []step{
			{"a", DefaultIPCBytesPerSecond, 0, true}, {"a", 1, 0, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRateLimiter(tc.limit)
			for i, s := range tc.steps {
				if got := r.Allow(s.principal, s.n, t0.Add(s.at)); got != s.want {
					t.Fatalf("step %d: Allow(%s, %d, +%v) = %v, want %v", i, s.principal, s.n, s.at, got, s.want)
				}
			}
		})
	}
}

func TestRateLimiterEvictsExpiredWindows(t *testing.T) {
	r := NewRateLimiter(10)
	t0 := time.Unix(1_000_000, 0)
	for i := range 10_000 {
		r.Allow(string(rune('a'+i%26))+string(rune(i)), 1, t0)
	}
	r.Allow("late", 1, t0.Add(2*time.Second))
	if len(r.windows) > 1 {
		t.Fatalf("%d windows kept after they all expired", len(r.windows))
	}
}
