package bus

import (
	"strconv"
	"strings"
)

// Limits on topics and subscribe patterns (reference spec §4.1, ABI v1).
const (
	// MaxTopicBytes is the longest topic or pattern, in bytes.
	MaxTopicBytes = 256
	// MaxTopicSegments is the deepest topic a capsule may publish on.
	MaxTopicSegments = 8
	// MaxTopicDepth is the deepest topic or pattern the matchers accept;
	// deeper topics never match anything.
	MaxTopicDepth = 20
)

// TopicError reports a topic or subscribe pattern that failed validation.
// TooLarge distinguishes the ABI's too-large error (length over
// [MaxTopicBytes]) from invalid-input (everything else).
//
// errors.Is(err, ErrInvalidTopic) holds for every TopicError, and
// errors.Is(err, ErrTooLarge) holds when TooLarge is set.
type TopicError struct {
	// Topic is the offending topic or pattern.
	Topic string
	// Reason says what is wrong, in lower case.
	Reason string
	// TooLarge is set when the topic is longer than MaxTopicBytes.
	TooLarge bool
}

// Error implements error.
func (e *TopicError) Error() string {
	t := e.Topic
	if len(t) > 64 {
		t = t[:64] + "..."
	}
	return "bus: invalid topic " + strconv.Quote(t) + ": " + e.Reason
}

// Is reports whether target is ErrInvalidTopic, or ErrTooLarge for a topic
// that is too long.
func (e *TopicError) Is(target error) bool {
	return target == ErrInvalidTopic || (e.TooLarge && target == ErrTooLarge)
}

func topicErr(topic, reason string) error {
	return &TopicError{Topic: topic, Reason: reason}
}

// ValidateTopic checks a topic a message is published on: 1 to
// [MaxTopicBytes] bytes, at most [MaxTopicSegments] dot-separated
// segments, no empty segment, printable ASCII without spaces, no wildcard
// (`*` or `>`), and not in a NATS-reserved namespace (a first segment
// starting with `$`, or `_INBOX`). It does not allocate when the topic is
// valid. The error is a *TopicError.
func ValidateTopic(topic string) error {
	return validate(topic, false, MaxTopicSegments)
}

// ValidatePattern checks a subscribe pattern or an ACL entry: the rules of
// [ValidateTopic], except that it may have up to [MaxTopicDepth] segments
// and `*` may appear as a whole segment (anywhere). `>` is never allowed:
// the subtree wildcard is a trailing `*`. The error is a *TopicError.
func ValidatePattern(pattern string) error {
	return validate(pattern, true, MaxTopicDepth)
}

func validate(s string, pattern bool, maxSegs int) error {
	if s == "" {
		return topicErr(s, "empty")
	}
	if len(s) > MaxTopicBytes {
		return &TopicError{Topic: s, Reason: "longer than 256 bytes", TooLarge: true}
	}
	segs := 1
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			switch {
			case c <= ' ' || c >= 0x7f:
				return topicErr(s, "contains a space, control or non-ASCII byte")
			case c == '>':
				return topicErr(s, "contains '>'")
			case c == '*':
				if !pattern {
					return topicErr(s, "contains a wildcard")
				}
				if i != start || (i+1 < len(s) && s[i+1] != '.') {
					return topicErr(s, "'*' must be a whole segment")
				}
			}
			continue
		}
		// End of a segment s[start:i].
		if i == start {
			return topicErr(s, "empty segment")
		}
		if i < len(s) {
			segs++
		}
		start = i + 1
	}
	if segs > maxSegs {
		return topicErr(s, "more than "+strconv.Itoa(maxSegs)+" segments")
	}
	if s[0] == '$' || s == "_INBOX" || strings.HasPrefix(s, "_INBOX.") {
		return topicErr(s, "reserved NATS namespace")
	}
	return nil
}

// isReservedSubject reports whether a NATS subject belongs to a namespace
// Astrid subscribers must never see: JetStream and system traffic (`$...`)
// and request inboxes (`_INBOX...`).
func isReservedSubject(subject string) bool {
	return (subject != "" && subject[0] == '$') || strings.HasPrefix(subject, "_INBOX.")
}

// Subjects maps Astrid topics to NATS subjects and back. A topic travels on
// the NATS subject of the same name, with Prefix and a dot in front when
// Prefix is set (for example Prefix "astrid.prod" puts topic "echo.v1.request"
// on subject "astrid.prod.echo.v1.request"). The zero value maps topics to
// themselves.
//
// Subjects is a value type and safe for concurrent use.
type Subjects struct {
	// Prefix is an optional deployment prefix: a literal NATS subject
	// (dot-separated segments, no wildcards). Empty means none.
	Prefix string
}

// Validate checks that the prefix is empty or a valid literal topic.
func (s Subjects) Validate() error {
	if s.Prefix == "" {
		return nil
	}
	return validate(s.Prefix, false, MaxTopicDepth)
}

// Subject returns the NATS subject for topic. It does not allocate when
// there is no prefix.
func (s Subjects) Subject(topic string) string {
	if s.Prefix == "" {
		return topic
	}
	return s.Prefix + "." + topic
}

// Topic returns the Astrid topic carried on a NATS subject: the subject
// without the prefix. A subject outside the prefix (a reply inbox, say) is
// returned unchanged. It never allocates.
func (s Subjects) Topic(subject string) string {
	if s.Prefix == "" {
		return subject
	}
	if len(subject) > len(s.Prefix) && subject[len(s.Prefix)] == '.' && subject[:len(s.Prefix)] == s.Prefix {
		return subject[len(s.Prefix)+1:]
	}
	return subject
}

// Route returns the NATS subscription subject for a route (subtree)
// pattern: [RouteToNATS] under the prefix.
func (s Subjects) Route(pattern string) string {
	return s.Subject(RouteToNATS(pattern))
}

// Strict returns the NATS subscription subject for a strict (interceptor)
// pattern: [StrictToNATS] under the prefix.
func (s Subjects) Strict(pattern string) string {
	return s.Subject(StrictToNATS(pattern))
}
