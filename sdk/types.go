package sdk

import (
	"encoding/json"
	"strconv"
	"time"
)

// Envelope is one message received with [Recv], [Poll] or a [Subscription],
// as the host delivers it (docs/abi.md, "envelope"). It owns its fields.
type Envelope struct {
	// Handle is the subscription the message arrived on; for a message on an
	// interceptor binding of a run-loop capsule it is the binding's handle.
	Handle int64
	// Topic is the topic the message was published on.
	Topic string
	// Payload is the message JSON, unwrapped.
	Payload json.RawMessage
	// Principal is the principal the message acts for.
	Principal string
	// Attribution says how the principal is known: "verified", "claimed" or
	// "system".
	Attribution string
	// SourceID is the session id of the sender, or empty.
	SourceID string
	// Seq is the host-stamped sequence number.
	Seq uint64
	// TS is the host-stamped publication time; zero when absent.
	TS time.Time
	// Action is set when the message arrived on an interceptor binding of a
	// run-loop capsule: the binding's handler name.
	Action string
	// HasReply reports whether the sender waits for a reply; answer with
	// [ReplyTo].
	HasReply bool
}

// Decode JSON-decodes the payload into v.
func (e *Envelope) Decode(v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return &jsonError{op: "decode payload", err: err}
	}
	return nil
}

type envelopeWire struct {
	Handle      int64           `json:"handle"`
	Topic       string          `json:"topic"`
	Payload     json.RawMessage `json:"payload"`
	Principal   string          `json:"principal"`
	Attribution string          `json:"attribution"`
	SourceID    string          `json:"source_id"`
	Seq         uint64          `json:"seq"`
	TS          string          `json:"ts"`
	Action      string          `json:"action"`
	HasReply    bool            `json:"has_reply"`
}

// decodeEnvelope parses the envelope JSON the host returns from ipc_poll and
// ipc_recv. It copies everything it keeps, so b may be reused afterwards.
func decodeEnvelope(b []byte) (Envelope, error) {
	var w envelopeWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Envelope{}, &jsonError{op: "decode envelope", err: err}
	}
	ts, err := parseTS(w.TS)
	if err != nil {
		return Envelope{}, &jsonError{op: "decode envelope", err: err}
	}
	return Envelope{
		Handle:      w.Handle,
		Topic:       w.Topic,
		Payload:     w.Payload,
		Principal:   w.Principal,
		Attribution: w.Attribution,
		SourceID:    w.SourceID,
		Seq:         w.Seq,
		TS:          ts,
		Action:      w.Action,
		HasReply:    w.HasReply,
	}, nil
}

// Caller describes the message being handled (sys_get_caller). All fields
// are empty when no message is being handled.
type Caller struct {
	// Principal is the invoking principal.
	Principal string
	// Attribution is "verified", "claimed" or "system".
	Attribution string
	// SourceID is the sender's session id, or empty.
	SourceID string
	// Topic is the topic of the message.
	Topic string
	// TS is the host-stamped publication time; zero when absent.
	TS time.Time
}

type callerWire struct {
	Principal   string `json:"principal"`
	Attribution string `json:"attribution"`
	SourceID    string `json:"source_id"`
	Topic       string `json:"topic"`
	TS          string `json:"ts"`
}

func decodeCaller(b []byte) (Caller, error) {
	var w callerWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Caller{}, &jsonError{op: "decode caller", err: err}
	}
	ts, err := parseTS(w.TS)
	if err != nil {
		return Caller{}, &jsonError{op: "decode caller", err: err}
	}
	return Caller{Principal: w.Principal, Attribution: w.Attribution, SourceID: w.SourceID, Topic: w.Topic, TS: ts}, nil
}

func parseTS(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Binding is one interceptor binding of the capsule: a [subscribe] entry
// with a handler, auto-subscribed by the host.
type Binding struct {
	// HandleID is the subscription handle of the binding.
	HandleID int64 `json:"handle_id"`
	// Action is the handler name.
	Action string `json:"action"`
	// Topic is the bound topic pattern.
	Topic string `json:"topic"`
}

// Level is a log level of sys_log.
type Level int32

// Log levels.
const (
	LevelTrace Level = 0
	LevelDebug Level = 1
	LevelInfo  Level = 2
	LevelWarn  Level = 3
	LevelError Level = 4
)

// String returns the lower-case name of l.
func (l Level) String() string {
	switch l {
	case LevelTrace:
		return "trace"
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	default:
		return "level(" + strconv.Itoa(int(l)) + ")"
	}
}
