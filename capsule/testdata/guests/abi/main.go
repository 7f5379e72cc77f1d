// Command abi is a test guest exercising every astrid_v1 host function
// through the SDK, one handler action per function. Each action takes a JSON
// object and replies (Final) with a JSON object:
//
//	{"ok":true, ...results}                     on success
//	{"ok":false,"err":"<code>","detail":"..."}  on a host error (code as in docs/abi.md)
//
// Actions (input -> extra reply fields). Byte strings travel as JSON strings.
//
//	publish    {"topic","payload"(JSON) | "raw"(string, sent verbatim)}   ipc_publish
//	reply      {"payload" | "raw"}                                        ipc_reply
//	subscribe  {"pattern"} -> {"handle"}                                  ipc_subscribe
//	unsubscribe {"handle"}                                                ipc_unsubscribe
//	poll       {"handle"} -> {"empty", "envelope"}                        ipc_poll
//	recv       {"handle","timeout_ms"} -> {"envelope"}                    ipc_recv
//
// Handles for unsubscribe, poll and recv are 0 (any subscription), a handle
// returned by "subscribe" (kept after closing, to test closed handles) or an
// interceptor binding's handle; any other handle replies
// {"ok":false,"err":"sdk"} without reaching the host.
//
//	bindings   {} -> {"bindings"}                                         ipc_interceptor_bindings
//	kv_get     {"key"} -> {"value","len"}                                 kv_get
//	kv_set     {"key","value","repeat"(>1 repeats value)}                 kv_set
//	kv_delete  {"key"}                                                    kv_delete
//	kv_list    {"prefix"} -> {"keys"}                                     kv_list_keys
//	kv_cas     {"key","expected"(null = must be absent),"new"}            kv_cas
//	kv_clear   {"prefix"} -> {"n"}                                        kv_clear_prefix
//	log        {"level","msg"}                                            sys_log
//	config     {"key"} -> {"found","value"}                               sys_get_config
//	caller     {} -> {"caller"}                                           sys_get_caller
//	clock      {} -> {"ms"}                                               sys_clock_ms
//	sleep      {"ms"}                                                     sys_sleep_ns
//	random     {"n"} -> {"hex"}                                           sys_random_bytes
//	ready      {}                                                         sys_signal_ready
//	elicit     {"request":{"kind","key",...}} -> {"answer"}                 sys_elicit (install/upgrade only)
//	has_secret {"key"} -> {"has"}                                         sys_has_secret
//	badptr     {"arg":"key"|"out"} -> {"code"}                            raw kv_get with an out-of-range pointer
//	alloc      {"mib"} -> {"total_mib"}                                   keeps N more MiB of guest heap
//	garbage    {"kib"}                                                    allocates N KiB and drops it; replies nothing (Pass)
//
// result_read is exercised by every failing call (error detail) and by any
// result larger than the SDK's 16 KiB out buffer (kv_get of a value stored
// with "repeat"). The install hook sets KV key "installed" to "yes"; the
// upgrade hook sets "upgraded_from" to the previous version.
//
// Capsule.toml binds topic abi.v1.call.<action> to each action, allows
// publishing only on abi.v1.allowed.* and subscribing on abi.v1.sub.*.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/astrid-go/astrid/sdk"
)

// in is the union of all action inputs.
type in struct {
	Topic     string            `json:"topic"`
	Payload   json.RawMessage   `json:"payload"`
	Raw       *string           `json:"raw"`
	Pattern   string            `json:"pattern"`
	Handle    int64             `json:"handle"`
	TimeoutMs int64             `json:"timeout_ms"`
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Repeat    int               `json:"repeat"`
	Prefix    string            `json:"prefix"`
	Expected  *string           `json:"expected"`
	New       string            `json:"new"`
	Level     int32             `json:"level"`
	Msg       string            `json:"msg"`
	Ms        int64             `json:"ms"`
	N         int               `json:"n"`
	Arg       string            `json:"arg"`
	MiB       int               `json:"mib"`
	KiB       int               `json:"kib"`
	Request   sdk.ElicitRequest `json:"request"`
}

func (i *in) body() []byte {
	if i.Raw != nil {
		return []byte(*i.Raw)
	}
	return i.Payload
}

// out is a reply: ok plus the fields of the action.
type out map[string]any

// action wraps fn: decode the input, run fn, reply with its result or error.
func action(name string, fn func(i *in) (out, error)) {
	sdk.Handle(name, func(c *sdk.Call) sdk.Result {
		currentCall = c
		defer func() { currentCall = nil }()
		var i in
		if len(c.Payload()) > 0 {
			if err := c.Decode(&i); err != nil {
				return sdk.Reply(out{"ok": false, "err": "bad-input", "detail": err.Error()})
			}
		}
		o, err := fn(&i)
		if err != nil {
			var e *sdk.Error
			if errors.As(err, &e) {
				return sdk.Reply(out{"ok": false, "err": e.Code.String(), "detail": e.Detail})
			}
			return sdk.Reply(out{"ok": false, "err": "sdk", "detail": err.Error()})
		}
		if o == nil {
			o = out{}
		}
		o["ok"] = true
		return sdk.Reply(o)
	})
}

func envelope(e sdk.Envelope) out {
	return out{
		"handle": e.Handle, "topic": e.Topic, "payload": e.Payload, "principal": e.Principal,
		"attribution": e.Attribution, "source_id": e.SourceID, "seq": e.Seq, "ts": e.TS,
		"action": e.Action, "has_reply": e.HasReply,
	}
}

var (
	// kept holds the memory grown by "alloc" so the GC cannot free it.
	kept [][]byte
	// sink makes "garbage" allocations escape to the heap.
	sink []byte
	// currentCall is the call being handled, for "caller".
	currentCall *sdk.Call
)

// subs holds every subscription made by "subscribe", closed or not, so a
// test can use a handle after closing it.
var subs = map[int64]sdk.Subscription{}

// subscription finds a handle made by "subscribe" or an interceptor binding.
func subscription(h int64) (sdk.Subscription, error) {
	if s, ok := subs[h]; ok {
		return s, nil
	}
	bs, err := sdk.InterceptorBindings()
	if err != nil {
		return sdk.Subscription{}, err
	}
	for _, b := range bs {
		if b.HandleID == h {
			return b.Subscription(), nil
		}
	}
	return sdk.Subscription{}, errors.New("abi guest: unknown handle")
}

func init() {
	action("publish", func(i *in) (out, error) { return nil, sdk.Publish(i.Topic, i.body()) })
	action("reply", func(i *in) (out, error) { return nil, sdk.ReplyTo(i.body()) })
	action("subscribe", func(i *in) (out, error) {
		s, err := sdk.Subscribe(i.Pattern)
		if err == nil {
			subs[s.Handle()] = s
		}
		return out{"handle": s.Handle()}, err
	})
	action("unsubscribe", func(i *in) (out, error) {
		s, err := subscription(i.Handle)
		if err != nil {
			return nil, err
		}
		return nil, s.Close()
	})
	action("poll", func(i *in) (out, error) {
		var e sdk.Envelope
		var ok bool
		var err error
		if i.Handle == 0 {
			e, ok, err = sdk.Poll()
		} else if s, serr := subscription(i.Handle); serr != nil {
			return nil, serr
		} else {
			e, ok, err = s.Poll()
		}
		if err != nil || !ok {
			return out{"empty": true}, err
		}
		return out{"empty": false, "envelope": envelope(e)}, nil
	})
	action("recv", func(i *in) (out, error) {
		d := time.Duration(i.TimeoutMs) * time.Millisecond
		var e sdk.Envelope
		var err error
		if i.Handle == 0 {
			e, err = sdk.Recv(d)
		} else if s, serr := subscription(i.Handle); serr != nil {
			return nil, serr
		} else {
			e, err = s.Recv(d)
		}
		if err != nil {
			return nil, err
		}
		return out{"envelope": envelope(e)}, nil
	})
	action("bindings", func(*in) (out, error) {
		b, err := sdk.InterceptorBindings()
		return out{"bindings": b}, err
	})
	action("kv_get", func(i *in) (out, error) {
		v, err := sdk.KVGet(i.Key)
		return out{"value": string(v), "len": len(v)}, err
	})
	action("kv_set", func(i *in) (out, error) {
		v := i.Value
		if i.Repeat > 1 {
			v = strings.Repeat(v, i.Repeat)
		}
		return nil, sdk.KVSet(i.Key, []byte(v))
	})
	action("kv_delete", func(i *in) (out, error) { return nil, sdk.KVDelete(i.Key) })
	action("kv_list", func(i *in) (out, error) {
		k, err := sdk.KVListKeys(i.Prefix)
		return out{"keys": k}, err
	})
	action("kv_cas", func(i *in) (out, error) {
		var expected []byte
		if i.Expected != nil {
			expected = []byte(*i.Expected)
		}
		return nil, sdk.KVCAS(i.Key, expected, []byte(i.New))
	})
	action("kv_clear", func(i *in) (out, error) {
		n, err := sdk.KVClearPrefix(i.Prefix)
		return out{"n": n}, err
	})
	action("log", func(i *in) (out, error) { sdk.Log(sdk.Level(i.Level), i.Msg); return nil, nil })
	action("config", func(i *in) (out, error) {
		v, found, err := sdk.Config(i.Key)
		return out{"found": found, "value": v}, err
	})
	action("caller", func(*in) (out, error) {
		c, err := currentCall.Caller()
		return out{"caller": out{
			"principal": c.Principal, "attribution": c.Attribution, "source_id": c.SourceID,
			"topic": c.Topic, "ts": c.TS,
		}}, err
	})
	action("clock", func(*in) (out, error) { return out{"ms": sdk.ClockMs()}, nil })
	action("sleep", func(i *in) (out, error) { return nil, sdk.Sleep(time.Duration(i.Ms) * time.Millisecond) })
	action("random", func(i *in) (out, error) {
		b, err := sdk.RandomBytes(i.N)
		return out{"hex": hex.EncodeToString(b)}, err
	})
	action("ready", func(*in) (out, error) { return nil, sdk.SignalReady() })
	action("elicit", func(i *in) (out, error) {
		a, err := sdk.Elicit(i.Request)
		return out{"answer": a}, err
	})
	action("has_secret", func(i *in) (out, error) {
		has, err := sdk.HasSecret(i.Key)
		return out{"has": has}, err
	})
	action("badptr", func(i *in) (out, error) { return out{"code": badPointer(i.Arg)}, nil })
	action("alloc", func(i *in) (out, error) {
		for range i.MiB {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1 // touch every page
			}
			kept = append(kept, b)
		}
		return out{"total_mib": len(kept)}, nil
	})

	// garbage decodes its input without reflection so that the only
	// allocation per call is the garbage itself.
	sdk.Handle("garbage", func(c *sdk.Call) sdk.Result {
		kib := 0
		for _, ch := range c.Payload() {
			if ch >= '0' && ch <= '9' {
				kib = kib*10 + int(ch-'0')
			}
		}
		sink = make([]byte, kib<<10)
		sink = nil
		return sdk.Pass()
	})

	sdk.OnInstall(func() error { return sdk.KVSet("installed", []byte("yes")) })
	sdk.OnUpgrade(func(prev string) error { return sdk.KVSet("upgraded_from", []byte(prev)) })
}

func main() {}
