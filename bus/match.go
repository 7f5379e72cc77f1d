package bus

import "strings"

// The two wildcard grammars of the reference spec (§4.2). Both take a
// dot-separated pattern in which `*` is a wildcard only when it is a whole
// segment (elsewhere it is a literal byte, as in NATS). Neither allocates.
// Inputs are expected to be validated ([ValidatePattern], [ValidateTopic]);
// on malformed input (empty segments, more than [MaxTopicDepth] segments)
// the matchers return false rather than guess.

// cut splits s at its first dot.
func cut(s string) (seg, rest string, more bool) {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// restOK reports whether rest, the remainder of a topic after a segment at
// depth depth, is non-empty segments only and keeps the whole topic within
// MaxTopicDepth.
func restOK(rest string, depth int) bool {
	if rest == "" || rest[0] == '.' || rest[len(rest)-1] == '.' || strings.Contains(rest, "..") {
		return false
	}
	return depth+1+strings.Count(rest, ".") <= MaxTopicDepth
}

// MatchRoute reports whether topic matches pattern under the route
// (subtree) grammar used for subscription delivery and for publish and
// subscribe ACLs: a `*` segment in the middle matches exactly one segment,
// and a trailing `*` matches one or more remaining segments. So `a.*.c`
// matches `a.b.c`; `a.b.*` matches `a.b.c` and `a.b.c.d` but not `a.b`;
// `*` matches every topic.
//
// It is the same relation as NATS subject matching of [RouteToNATS](pattern)
// against topic. It does not allocate and is safe for concurrent use.
func MatchRoute(pattern, topic string) bool {
	if pattern == "" || topic == "" {
		return false
	}
	for depth := 1; ; depth++ {
		ps, pr, pmore := cut(pattern)
		ts, tr, tmore := cut(topic)
		if ps == "" || ts == "" || depth > MaxTopicDepth {
			return false
		}
		if ps == "*" {
			if !pmore {
				return !tmore || restOK(tr, depth)
			}
		} else if ps != ts {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = pr, tr
	}
}

// MatchStrict reports whether topic matches pattern under the strict
// grammar used for interceptor bindings (`[subscribe]` entries with a
// handler): every `*` matches exactly one segment and the segment counts
// must be equal. So `a.b.*` matches `a.b.c` but not `a.b.c.d`.
//
// It is the same relation as NATS subject matching of [StrictToNATS](pattern)
// against topic. It does not allocate and is safe for concurrent use.
func MatchStrict(pattern, topic string) bool {
	if pattern == "" || topic == "" {
		return false
	}
	for depth := 1; ; depth++ {
		ps, pr, pmore := cut(pattern)
		ts, tr, tmore := cut(topic)
		if ps == "" || ts == "" || depth > MaxTopicDepth {
			return false
		}
		if ps != "*" && ps != ts {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = pr, tr
	}
}

// CoversRoute reports whether the ACL entry acl covers the subscribe
// pattern pattern, both in the route grammar: every topic pattern can
// match is one acl matches. So the ACL `a.*` covers `a.b`, `a.b.*`, `a.*.c`
// and `a.*`; the ACL `a.b` does not cover `a.*`; the ACL `a.*.c` does not
// cover `a.*` (a trailing `*` is a subtree, which only a trailing `*` at the
// same depth or shallower covers).
//
// It is the same relation as NATS subset matching of [RouteToNATS](pattern)
// against RouteToNATS(acl). It does not allocate and is safe for concurrent
// use.
func CoversRoute(acl, pattern string) bool {
	if acl == "" || pattern == "" {
		return false
	}
	for depth := 1; ; depth++ {
		as, ar, amore := cut(acl)
		ps, pr, pmore := cut(pattern)
		if as == "" || ps == "" || depth > MaxTopicDepth {
			return false
		}
		if as == "*" && !amore {
			// Subtree: covers this segment and anything after it.
			return !pmore || restOK(pr, depth)
		}
		if ps == "*" && !pmore {
			// The pattern is a subtree here and the ACL is not.
			return false
		}
		if as != "*" && as != ps {
			// A literal ACL segment covers only the same literal; a
			// single-segment wildcard in the pattern is not covered.
			return false
		}
		if !amore || !pmore {
			return amore == pmore
		}
		acl, pattern = ar, pr
	}
}

// RouteToNATS translates a route pattern into a NATS subscription subject:
// a trailing `*` becomes `>`, a middle `*` stays `*`. So `a.*` becomes
// `a.>`, `a.*.c` stays `a.*.c`, and `*` becomes `>`.
func RouteToNATS(pattern string) string {
	switch {
	case pattern == "*":
		return ">"
	case strings.HasSuffix(pattern, ".*"):
		return pattern[:len(pattern)-1] + ">"
	default:
		return pattern
	}
}

// StrictToNATS translates a strict (interceptor) pattern into a NATS
// subscription subject. The grammars coincide, so the pattern is returned
// unchanged; the function exists so that call sites say which grammar they
// mean.
func StrictToNATS(pattern string) string {
	return pattern
}
