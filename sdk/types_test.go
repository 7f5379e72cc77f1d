package sdk

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Envelope
		wantErr bool
	}{
		{
			name: "abi.md example",
			in: `{"handle":1,"topic":"ticker.v1.in","payload":{"any":"json"},
 "principal":"alice","attribution":"claimed","source_id":"5f0c",
 "seq":42,"ts":"2026-12-04T20:00:00.000Z","action":"","has_reply":false}`,
			want: Envelope{
				Handle: 1, Topic: "ticker.v1.in", Payload: json.RawMessage(`{"any":"json"}`),
				Principal: "alice", Attribution: "claimed", SourceID: "5f0c", Seq: 42,
				TS: time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC),
			},
		},
		{
			name: "interceptor message with reply",
			in:   `{"handle":3,"topic":"a.b","payload":[1,2],"principal":"bob","attribution":"verified","seq":1,"ts":"2026-01-02T03:04:05.123456789+01:00","action":"handle","has_reply":true}`,
			want: Envelope{
				Handle: 3, Topic: "a.b", Payload: json.RawMessage(`[1,2]`), Principal: "bob",
				Attribution: "verified", Seq: 1, Action: "handle", HasReply: true,
				TS: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("", 3600)),
			},
		},
		{name: "missing fields are zero", in: `{"topic":"x"}`, want: Envelope{Topic: "x"}},
		{name: "empty ts is zero", in: `{"ts":""}`, want: Envelope{}},
		{name: "unknown fields are ignored", in: `{"topic":"x","origin":"node-1"}`, want: Envelope{Topic: "x"}},
		{name: "bad ts", in: `{"ts":"yesterday"}`, wantErr: true},
		{name: "not json", in: `{"topic":`, wantErr: true},
		{name: "wrong type", in: `{"seq":"one"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEnvelope([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("decodeEnvelope = %+v, want an error", got)
				}
				var je *jsonError
				if !errors.As(err, &je) {
					t.Errorf("error %T %v, want *jsonError", err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.TS.Equal(tt.want.TS) {
				t.Errorf("TS %v, want %v", got.TS, tt.want.TS)
			}
			got.TS, tt.want.TS = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeEnvelope =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestDecodeEnvelopeCopies proves the envelope does not alias the out
// buffer, which the next host call overwrites.
func TestDecodeEnvelopeCopies(t *testing.T) {
	b := []byte(`{"topic":"t.x","payload":{"k":"v"},"principal":"p"}`)
	env, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'Z'
	}
	if env.Topic != "t.x" || string(env.Payload) != `{"k":"v"}` || env.Principal != "p" {
		t.Errorf("envelope changed with its input: %+v", env)
	}
	var v struct{ K string }
	if err := env.Decode(&v); err != nil || v.K != "v" {
		t.Errorf("Decode = %v, %+v", err, v)
	}
}

func TestDecodeCaller(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Caller
		wantErr bool
	}{
		{"none", `{}`, Caller{}, false},
		{
			"full",
			`{"principal":"alice","attribution":"system","source_id":"s1","topic":"counter.v1.increment","ts":"2026-12-04T20:00:00.000Z"}`,
			Caller{Principal: "alice", Attribution: "system", SourceID: "s1", Topic: "counter.v1.increment",
				TS: time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)},
			false,
		},
		{"bad", `[]`, Caller{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCaller([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if !got.TS.Equal(tt.want.TS) {
				t.Errorf("TS %v, want %v", got.TS, tt.want.TS)
			}
			got.TS, tt.want.TS = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("decodeCaller = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBindingJSON(t *testing.T) {
	var bs []Binding
	if err := json.Unmarshal([]byte(`[{"handle_id":4,"action":"echo","topic":"echo.v1.request"}]`), &bs); err != nil {
		t.Fatal(err)
	}
	want := []Binding{{HandleID: 4, Action: "echo", Topic: "echo.v1.request"}}
	if !reflect.DeepEqual(bs, want) {
		t.Errorf("bindings %+v, want %+v", bs, want)
	}
	if h := bs[0].Subscription().Handle(); h != 4 {
		t.Errorf("binding subscription handle %d, want 4", h)
	}
}

func TestLevelString(t *testing.T) {
	tests := map[Level]string{
		LevelTrace: "trace", LevelDebug: "debug", LevelInfo: "info", LevelWarn: "warn", LevelError: "error", 9: "level(9)",
	}
	for l, want := range tests {
		if got := l.String(); got != want {
			t.Errorf("Level(%d).String() = %q, want %q", int32(l), got, want)
		}
	}
	if LevelTrace != 0 || LevelError != 4 {
		t.Error("log levels drifted from docs/abi.md (0 trace .. 4 error)")
	}
}
