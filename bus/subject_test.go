package bus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/bus"
)

// referenceTopics are topics named in the reference spec (§4.1); every one
// must be publishable.
var referenceTopics = []string{
	"tool.v1.execute.get_weather",
	"tool.v1.execute.get_weather.result",
	"tool.v1.request.execute",
	"tool.v1.execute.result",
	"tool.v1.request.cancel",
	"tool.v1.request.describe",
	"tool.v1.response.describe.weather-capsule",
	"astrid.v1.elicit.response.550e8400-e29b-41d4-a716-446655440000",
	"astrid.v1.approval.response.req_42",
	"astrid.v1.request.list_capsules.7f3a",
	"astrid.v1.admin.response.reload",
	"astrid.v1.capsules_loaded",
	"astrid.v1.health.failed",
	"astrid.v1.watchdog.tick",
	"astrid.v1.event_bus.lagged",
	"astrid.v1.onboarding.required",
	"astrid.v1.audit.entry",
	"user.v1.prompt",
	"agent.v1.stream.delta",
	"agent.v1.session_changed",
	"llm.v1.request.generate.anthropic",
	"llm.v1.stream.openai",
	"session.v1.response.get.abc123",
	"client.v1.heartbeat",
	"cli.v1.command.run.git",
	"cli.v1.command.result.req-9",
	"astrid.process.v1.log-ready.p1",
	"echo.v1.request",
	"counter.v1.increment",
	"ticker.v1.out",
}

func TestValidateTopic(t *testing.T) {
	seg := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = "s"
		}
		return strings.Join(s, ".")
	}
	long256 := strings.Repeat("a", 250) + ".b.c.d" // 256 bytes, 4 segments
	tests := []struct {
		name     string
		topic    string
		wantErr  bool
		tooLarge bool
	}{
		{name: "one segment", topic: "a"},
		{name: "8 segments", topic: seg(8)},
		{name: "256 bytes", topic: long256},
		{name: "printable punctuation", topic: "a.b+c.d@e.f#g.h~i"},
		{name: "empty", topic: "", wantErr: true},
		{name: "9 segments", topic: seg(9), wantErr: true},
		{name: "257 bytes", topic: long256 + "x", wantErr: true, tooLarge: true},
		{name: "leading dot", topic: ".a", wantErr: true},
		{name: "trailing dot", topic: "a.", wantErr: true},
		{name: "empty segment", topic: "a..b", wantErr: true},
		{name: "space", topic: "a b", wantErr: true},
		{name: "tab", topic: "a\tb", wantErr: true},
		{name: "newline", topic: "a\nb", wantErr: true},
		{name: "nul", topic: "a\x00", wantErr: true},
		{name: "del", topic: "a\x7f", wantErr: true},
		{name: "non-ASCII", topic: "caf\u00e9.v1", wantErr: true},
		{name: "star segment", topic: "a.*", wantErr: true},
		{name: "star inside", topic: "a.b*", wantErr: true},
		{name: "gt", topic: "a.>", wantErr: true},
		{name: "gt inside", topic: "a.b>c", wantErr: true},
		{name: "jetstream api", topic: "$JS.API.STREAM.DELETE.astrid_kv", wantErr: true},
		{name: "kv subject", topic: "$KV.astrid_kv.alice.capsule.x.k", wantErr: true},
		{name: "inbox", topic: "_INBOX.abc", wantErr: true},
		{name: "inbox alone", topic: "_INBOX", wantErr: true},
		{name: "inbox-like is fine", topic: "_INBOXES.abc"},
		{name: "dollar later is fine", topic: "a.$b"},
	}
	for _, topic := range referenceTopics {
		tests = append(tests, struct {
			name     string
			topic    string
			wantErr  bool
			tooLarge bool
		}{name: "reference " + topic, topic: topic})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bus.ValidateTopic(tt.topic)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidateTopic(%q) = %v, want error %v", tt.topic, err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var te *bus.TopicError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TopicError", err)
			}
			if te.TooLarge != tt.tooLarge {
				t.Errorf("TooLarge = %v, want %v", te.TooLarge, tt.tooLarge)
			}
			if !errors.Is(err, bus.ErrInvalidTopic) {
				t.Errorf("error does not match ErrInvalidTopic")
			}
			if errors.Is(err, bus.ErrTooLarge) != tt.tooLarge {
				t.Errorf("errors.Is(err, ErrTooLarge) = %v, want %v", !tt.tooLarge, tt.tooLarge)
			}
			if !strings.HasPrefix(err.Error(), "bus: ") {
				t.Errorf("message %q lacks the package prefix", err)
			}
		})
	}
}

func TestValidatePattern(t *testing.T) {
	seg := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = "*"
		}
		return strings.Join(s, ".")
	}
	tests := []struct {
		name     string
		pattern  string
		wantErr  bool
		tooLarge bool
	}{
		{name: "literal", pattern: "tool.v1.execute.get_weather"},
		{name: "everything", pattern: "*"},
		{name: "subtree", pattern: "tool.v1.execute.*"},
		{name: "middle", pattern: "tool.v1.execute.*.result"},
		{name: "leading", pattern: "*.v1.request"},
		{name: "20 segments", pattern: seg(20)},
		{name: "21 segments", pattern: seg(21), wantErr: true},
		{name: "too long", pattern: strings.Repeat("a", 257), wantErr: true, tooLarge: true},
		{name: "empty", pattern: "", wantErr: true},
		{name: "partial star suffix", pattern: "a.b*", wantErr: true},
		{name: "partial star prefix", pattern: "a.*b", wantErr: true},
		{name: "double star", pattern: "a.**", wantErr: true},
		{name: "gt", pattern: "a.>", wantErr: true},
		{name: "gt alone", pattern: ">", wantErr: true},
		{name: "empty segment", pattern: "a..*", wantErr: true},
		{name: "space", pattern: "a.* ", wantErr: true},
		{name: "reserved", pattern: "$KV.*", wantErr: true},
		{name: "inbox", pattern: "_INBOX.*", wantErr: true},
	}
	for _, topic := range referenceTopics {
		tests = append(tests, struct {
			name     string
			pattern  string
			wantErr  bool
			tooLarge bool
		}{name: "reference " + topic, pattern: topic})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bus.ValidatePattern(tt.pattern)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidatePattern(%q) = %v, want error %v", tt.pattern, err, tt.wantErr)
			}
			var te *bus.TopicError
			if err != nil && (!errors.As(err, &te) || te.TooLarge != tt.tooLarge) {
				t.Fatalf("error %v: want *TopicError with TooLarge %v", err, tt.tooLarge)
			}
		})
	}
}

func TestValidateAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		_ = bus.ValidateTopic("tool.v1.execute.get_weather")
		_ = bus.ValidatePattern("tool.v1.*.get_weather.*")
	}); n != 0 {
		t.Fatalf("validation of valid input allocates %v times", n)
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		topic   string
		subject string
	}{
		{name: "no prefix", topic: "echo.v1.request", subject: "echo.v1.request"},
		{name: "prefix", prefix: "astrid.prod", topic: "echo.v1.request", subject: "astrid.prod.echo.v1.request"},
		{name: "prefix one segment", prefix: "n1", topic: "a", subject: "n1.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := bus.Subjects{Prefix: tt.prefix}
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := s.Subject(tt.topic); got != tt.subject {
				t.Errorf("Subject(%q) = %q, want %q", tt.topic, got, tt.subject)
			}
			if got := s.Topic(tt.subject); got != tt.topic {
				t.Errorf("Topic(%q) = %q, want %q", tt.subject, got, tt.topic)
			}
		})
	}

	p := bus.Subjects{Prefix: "astrid.prod"}
	for subject, want := range map[string]string{
		"_INBOX.xyz":          "_INBOX.xyz",          // outside the prefix: unchanged
		"astrid.production.a": "astrid.production.a", // not a segment boundary
		"astrid.prod":         "astrid.prod",
	} {
		if got := p.Topic(subject); got != want {
			t.Errorf("Topic(%q) = %q, want %q", subject, got, want)
		}
	}
	if got := p.Route("tool.v1.*"); got != "astrid.prod.tool.v1.>" {
		t.Errorf("Route = %q", got)
	}
	if got := p.Strict("tool.v1.*"); got != "astrid.prod.tool.v1.*" {
		t.Errorf("Strict = %q", got)
	}
	for _, bad := range []string{"a..b", "a.*", "a b", "$SYS"} {
		if err := (bus.Subjects{Prefix: bad}).Validate(); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = p.Topic("astrid.prod.echo.v1.request") }); n != 0 {
		t.Errorf("Topic allocates %v times", n)
	}
}
