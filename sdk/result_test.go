package sdk

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestResultFraming(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		want []byte
	}{
		{"pass is empty", Pass(), []byte{}},
		{"zero value is pass", Result{}, []byte{}},
		{"continue with data", Continue([]byte(`{"a":1}`)), []byte("\x00{\"a\":1}")},
		{"continue unchanged", Continue(nil), []byte{0x00}},
		{"final", Final([]byte(`{"hi":1}`)), []byte("\x01{\"hi\":1}")},
		{"final empty", Final(nil), []byte{0x01}},
		{"reply encodes json", Reply(map[string]int{"count": 3}), []byte("\x01{\"count\":3}")},
		{"deny", Deny("not allowed"), []byte("\x02not allowed")},
		{"fail", Fail(errors.New("boom")), []byte("\x03boom")},
		{"fail nil", Fail(nil), []byte("\x03unknown error")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.r.appendTo(nil)
			if !bytes.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("framing %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReplyEncodingFailure(t *testing.T) {
	got := string(Reply(math.Inf(1)).appendTo(nil))
	if !strings.HasPrefix(got, "\x03sdk: reply: json: unsupported value") {
		t.Errorf("framing %q, want an error result", got)
	}
}

func TestResultAppendReusesBuffer(t *testing.T) {
	b := make([]byte, 0, 64)
	b = Final([]byte("first")).appendTo(b[:0])
	b = Deny("second").appendTo(b[:0])
	if string(b) != "\x02second" {
		t.Errorf("framing %q, want %q", b, "\x02second")
	}
	if allocs := testing.AllocsPerRun(100, func() { b = Final([]byte("xyz")).appendTo(b[:0]) }); allocs != 0 {
		t.Errorf("appendTo allocates %v times per call, want 0", allocs)
	}
}

func TestHookResultFraming(t *testing.T) {
	if got := appendHookResult(nil, nil); len(got) != 0 {
		t.Errorf("success framing %q, want empty", got)
	}
	if got := appendHookResult(nil, errors.New("no config")); string(got) != "\x03no config" {
		t.Errorf("failure framing %q, want %q", got, "\x03no config")
	}
}
