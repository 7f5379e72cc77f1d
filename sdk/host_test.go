//go:build !wasip1

package sdk

import (
	"errors"
	"testing"
	"time"
)

// Outside wasip1 every host function fails with internal and the detail
// comes from result_read: this exercises the SDK's error path end to end on
// the host. (The wasm path is covered in guests_test.go.)
func TestNoHostErrors(t *testing.T) {
	check := func(name string, err error) {
		t.Helper()
		var e *Error
		if !errors.As(err, &e) || e.Code != Internal || e.Detail != noHostDetail {
			t.Errorf("%s: err %v, want internal with %q", name, err, noHostDetail)
		}
		if !errors.Is(err, ErrInternal) {
			t.Errorf("%s: errors.Is(err, ErrInternal) is false", name)
		}
	}
	_, err := KVGet("k")
	check("KVGet", err)
	check("KVSet", KVSet("k", []byte("v")))
	check("KVCAS", KVCAS("k", nil, []byte("v")))
	check("KVGetJSON", KVGetJSON("k", new(int)))
	_, err = KVClearPrefix("")
	check("KVClearPrefix", err)
	check("Publish", Publish("a.b", []byte("{}")))
	_, err = Subscribe("a.*")
	check("Subscribe", err)
	_, err = Recv(time.Second)
	check("Recv", err)
	_, ok, err := Poll()
	check("Poll", err)
	if ok {
		t.Error("Poll reported a message")
	}
	_, _, err = Config("k")
	check("Config", err)
	check("Sleep", Sleep(time.Millisecond))
	check("SignalReady", SignalReady())
	_, err = (&Call{}).Caller()
	check("Caller", err)
	if err := Sleep(0); err != nil {
		t.Errorf("Sleep(0) = %v, want nil without a host call", err)
	}
	Log(LevelInfo, "ignored") // must not panic
}

func TestSDKErrorsAreNotHostErrors(t *testing.T) {
	err := PublishJSON("a.b", func() {})
	var e *Error
	if err == nil || errors.As(err, &e) {
		t.Errorf("PublishJSON(func) = %v, want a JSON encoding error", err)
	}
	if _, err := RandomBytes(-1); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("RandomBytes(-1) = %v, want invalid-input", err)
	}
}
