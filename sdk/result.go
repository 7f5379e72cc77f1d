package sdk

import "encoding/json"

// InterceptResult framing tags (docs/abi.md).
const (
	tagContinue byte = 0x00
	tagFinal    byte = 0x01
	tagDeny     byte = 0x02
	tagError    byte = 0x03
)

type resultKind uint8

const (
	kindPass resultKind = iota
	kindContinue
	kindFinal
	kindDeny
	kindFail
)

// Result is what a handler returns: continue the interceptor chain (with the
// payload unchanged or replaced), stop it with a final reply, deny the
// message, or report a failure. The zero Result is [Pass].
//
// A Result is a small value; building one does not allocate, except [Reply]
// (JSON encoding) and [Fail] (formatting the error).
type Result struct {
	kind resultKind
	data []byte
	text string
}

// Pass continues the chain with the payload unchanged.
func Pass() Result { return Result{} }

// Continue continues the chain; the next handler gets data instead of the
// original payload (the payload is unchanged when data is empty). data is
// copied when the handler returns, so it may alias [Call.Payload].
func Continue(data []byte) Result { return Result{kind: kindContinue, data: data} }

// Final stops the chain; data is the reply to a requester. data is copied
// when the handler returns, so it may alias [Call.Payload].
func Final(data []byte) Result { return Result{kind: kindFinal, data: data} }

// Reply JSON-encodes v and returns it as [Final]. If encoding fails it
// returns [Fail] with the encoding error.
func Reply(v any) Result {
	b, err := json.Marshal(v)
	if err != nil {
		return Fail(&jsonError{op: "reply", err: err})
	}
	return Final(b)
}

// Deny stops the chain; a requester gets an error reply carrying reason.
func Deny(reason string) Result { return Result{kind: kindDeny, text: reason} }

// Fail reports that the handler failed. The host logs err and the chain
// continues with the next handler. A nil err is reported as "unknown error".
func Fail(err error) Result {
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	return Result{kind: kindFail, text: msg}
}

// appendTo appends r in InterceptResult framing to b.
func (r Result) appendTo(b []byte) []byte {
	switch r.kind {
	case kindContinue:
		return append(append(b, tagContinue), r.data...)
	case kindFinal:
		return append(append(b, tagFinal), r.data...)
	case kindDeny:
		return append(append(b, tagDeny), r.text...)
	case kindFail:
		return append(append(b, tagError), r.text...)
	default: // kindPass: the empty result means "continue unchanged".
		return b
	}
}

// appendHookResult appends the HookResult framing of a lifecycle hook's
// error to b: nothing for success, 0x03 + message for failure.
func appendHookResult(b []byte, err error) []byte {
	if err == nil {
		return b
	}
	return append(append(b, tagError), err.Error()...)
}

// jsonError is an encoding or decoding failure inside the SDK.
type jsonError struct {
	op  string
	err error
}

func (e *jsonError) Error() string { return "sdk: " + e.op + ": " + e.err.Error() }
func (e *jsonError) Unwrap() error { return e.err }
