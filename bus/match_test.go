package bus_test

import (
	"strings"
	"testing"

	"github.com/astrid-go/astrid/bus"
	"github.com/nats-io/nats-server/v2/server"
)

func TestMatchRoute(t *testing.T) {
	deep := strings.Repeat("a.", 20) + "a" // 21 segments
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"a.b.c", "a.b.c", true},
		{"a.b.c", "a.b", false},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b.d", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.*.c", "a.b.x.c", false},
		{"a.b.*", "a.b.c", true},
		{"a.b.*", "a.b.c.d", true},
		{"a.b.*", "a.b.c.d.e.f", true},
		{"a.b.*", "a.b", false},
		{"a.b.*", "a.x.c", false},
		{"*", "a", true},
		{"*", "a.b.c", true},
		{"*.b", "a.b", true},
		{"*.b", "a.b.c", false},
		{"*.*", "a", false},
		{"*.*", "a.b", true},
		{"*.*", "a.b.c", true},
		{"tool.v1.execute.*", "tool.v1.execute.get_weather", true},
		{"tool.v1.execute.*", "tool.v1.execute.get_weather.result", true},
		{"tool.v1.execute.*.result", "tool.v1.execute.get_weather.result", true},
		{"tool.v1.execute.*.result", "tool.v1.execute.result", false},
		{"a.b*", "a.b*", true}, // not a wildcard: literal bytes
		{"a.b*", "a.bc", false},
		{"", "a", false},
		{"a", "", false},
		{"a..b", "a..b", false},
		{"*", deep, false}, // deeper than MaxTopicDepth
		{"a.*", deep, false},
	}
	for _, tt := range tests {
		if got := bus.MatchRoute(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("MatchRoute(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
		if validMatchPair(tt.pattern, tt.topic) {
			if ref := server.SubjectMatchesFilter(tt.topic, bus.RouteToNATS(tt.pattern)); ref != tt.want {
				t.Errorf("table disagrees with NATS for route %q vs %q: nats says %v", tt.pattern, tt.topic, ref)
			}
		}
	}
}

func TestMatchStrict(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"a.b.c", "a.b.c", true},
		{"a.b.*", "a.b.c", true},
		{"a.b.*", "a.b.c.d", false},
		{"a.b.*", "a.b", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"*.*", "a.b", true},
		{"tool.v1.execute.*", "tool.v1.execute.get_weather", true},
		{"tool.v1.execute.*", "tool.v1.execute.get_weather.result", false},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
		{"", "a", false},
		{"a", "", false},
	}
	for _, tt := range tests {
		if got := bus.MatchStrict(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("MatchStrict(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
		if validMatchPair(tt.pattern, tt.topic) {
			if ref := server.SubjectMatchesFilter(tt.topic, bus.StrictToNATS(tt.pattern)); ref != tt.want {
				t.Errorf("table disagrees with NATS for strict %q vs %q: nats says %v", tt.pattern, tt.topic, ref)
			}
		}
	}
}

func TestCoversRoute(t *testing.T) {
	tests := []struct {
		acl, pattern string
		want         bool
	}{
		{"a.*", "a.b", true},
		{"a.*", "a.b.*", true},
		{"a.*", "a.*", true},
		{"a.*", "a.*.c", true},
		{"a.*", "a.b.c.d", true},
		{"a.*", "a", false},
		{"a.*", "b.c", false},
		{"a.b", "a.*", false},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.*.c", true},
		{"a.*.c", "a.*", false},
		{"a.*.c", "a.b.*", false},
		{"a.*.*", "a.b.*", true},
		{"a.*.*", "a.b.c", true},
		{"a.*.*", "a.b", false},
		{"a.b.*", "a.*.c", false},
		{"a.b.*", "a.*", false},
		{"*", "*", true},
		{"*", "x.y.z", true},
		{"*", "x.*", true},
		{"*.b", "a.b", true},
		{"*.b", "*.b", true},
		{"*.b", "*", false},
		{"tool.v1.execute.*", "tool.v1.execute.*.result", true},
		{"tool.v1.execute.*.result", "tool.v1.execute.*", false},
		{"", "a", false},
		{"a", "", false},
	}
	for _, tt := range tests {
		if got := bus.CoversRoute(tt.acl, tt.pattern); got != tt.want {
			t.Errorf("CoversRoute(%q, %q) = %v, want %v", tt.acl, tt.pattern, got, tt.want)
		}
		if validPattern(tt.acl) && validPattern(tt.pattern) {
			if ref := server.SubjectMatchesFilter(bus.RouteToNATS(tt.pattern), bus.RouteToNATS(tt.acl)); ref != tt.want {
				t.Errorf("table disagrees with NATS for covers %q %q: nats says %v", tt.acl, tt.pattern, ref)
			}
		}
	}
}

func TestRouteToNATS(t *testing.T) {
	tests := []struct{ route, nats, strict string }{
		{"*", ">", "*"},
		{"a.*", "a.>", "a.*"},
		{"a.*.c", "a.*.c", "a.*.c"},
		{"a.*.*", "a.*.>", "a.*.*"},
		{"a.b", "a.b", "a.b"},
		{"a.b*", "a.b*", "a.b*"},
	}
	for _, tt := range tests {
		if got := bus.RouteToNATS(tt.route); got != tt.nats {
			t.Errorf("RouteToNATS(%q) = %q, want %q", tt.route, got, tt.nats)
		}
		if got := bus.StrictToNATS(tt.route); got != tt.strict {
			t.Errorf("StrictToNATS(%q) = %q, want %q", tt.route, got, tt.strict)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	n := testing.AllocsPerRun(1000, func() {
		_ = bus.MatchRoute("tool.v1.execute.*", "tool.v1.execute.get_weather.result")
		_ = bus.MatchRoute("tool.v1.*.get_weather", "tool.v1.execute.get_weather")
		_ = bus.MatchStrict("tool.v1.execute.*", "tool.v1.execute.get_weather")
		_ = bus.CoversRoute("tool.v1.*", "tool.v1.execute.*")
	})
	if n != 0 {
		t.Fatalf("matchers allocate %v times per run", n)
	}
}

func validPattern(p string) bool { return bus.ValidatePattern(p) == nil }

// validTopicForMatch accepts what the matchers are defined on: a valid
// pattern without wildcard segments (up to MaxTopicDepth segments).
func validTopicForMatch(topic string) bool {
	if bus.ValidatePattern(topic) != nil {
		return false
	}
	for _, s := range strings.Split(topic, ".") {
		if s == "*" {
			return false
		}
	}
	return true
}

func validMatchPair(pattern, topic string) bool {
	return validPattern(pattern) && validTopicForMatch(topic)
}

// derive builds a dot-joined string from data over a tiny alphabet, so
// that random inputs collide often enough to exercise matches.
func derive(data string, stars bool) string {
	if data == "" {
		return ""
	}
	alpha := []string{"a", "b", "ab"}
	if stars {
		alpha = append(alpha, "*", "*")
	}
	n := 1 + int(data[0])%6
	segs := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		c := byte(i * 31)
		if i < len(data) {
			c = data[i]
		}
		segs = append(segs, alpha[int(c)%len(alpha)])
	}
	return strings.Join(segs, ".")
}

// checkAgainstNATS asserts that the three matchers agree with the NATS
// server's own subject matching (SubjectMatchesFilter) on valid inputs.
func checkAgainstNATS(t *testing.T, pattern, topic, other string) {
	if validMatchPair(pattern, topic) {
		if got, ref := bus.MatchRoute(pattern, topic), server.SubjectMatchesFilter(topic, bus.RouteToNATS(pattern)); got != ref {
			t.Fatalf("MatchRoute(%q, %q) = %v; NATS %q says %v", pattern, topic, got, bus.RouteToNATS(pattern), ref)
		}
		if got, ref := bus.MatchStrict(pattern, topic), server.SubjectMatchesFilter(topic, bus.StrictToNATS(pattern)); got != ref {
			t.Fatalf("MatchStrict(%q, %q) = %v; NATS says %v", pattern, topic, got, ref)
		}
	}
	if validPattern(pattern) && validPattern(other) {
		if got, ref := bus.CoversRoute(pattern, other), server.SubjectMatchesFilter(bus.RouteToNATS(other), bus.RouteToNATS(pattern)); got != ref {
			t.Fatalf("CoversRoute(%q, %q) = %v; NATS subset match says %v", pattern, other, got, ref)
		}
	}
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"a.*", "a.b.c"}, {"a.*.c", "a.b.c"}, {"*", "x"}, {"a.b.*", "a.b"},
		{"tool.v1.execute.*", "tool.v1.execute.get_weather.result"},
		{"\x03\x01\x04\x00", "\x02\x01\x01"}, {"\x05\x03\x03\x03\x03\x03", "\x05\x00\x01\x02\x00\x01"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		// The raw strings, when they happen to be valid.
		checkAgainstNATS(t, pattern, topic, topic)
		// Structured inputs derived from the same bytes.
		p := derive(pattern, true)
		checkAgainstNATS(t, p, derive(topic, false), derive(topic, true))
	})
}
