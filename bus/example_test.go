package bus_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

func ExampleMatchRoute() {
	fmt.Println(bus.MatchRoute("tool.v1.execute.*", "tool.v1.execute.get_weather"))
	fmt.Println(bus.MatchRoute("tool.v1.execute.*", "tool.v1.execute.get_weather.result"))
	fmt.Println(bus.MatchRoute("tool.v1.execute.*", "tool.v1.execute"))
	// Output:
	// true
	// true
	// false
}

func ExampleMatchStrict() {
	fmt.Println(bus.MatchStrict("tool.v1.execute.*", "tool.v1.execute.get_weather"))
	fmt.Println(bus.MatchStrict("tool.v1.execute.*", "tool.v1.execute.get_weather.result"))
	// Output:
	// true
	// false
}

func ExampleCoversRoute() {
	fmt.Println(bus.CoversRoute("tool.v1.*", "tool.v1.execute.*"))
	fmt.Println(bus.CoversRoute("tool.v1.execute.get_weather", "tool.v1.execute.*"))
	// Output:
	// true
	// false
}

func ExampleSubjects() {
	s := bus.Subjects{Prefix: "astrid.prod"}
	fmt.Println(s.Subject("echo.v1.request"))
	fmt.Println(s.Topic("astrid.prod.echo.v1.request"))
	fmt.Println(s.Route("tool.v1.*"))
	fmt.Println(s.Strict("tool.v1.*"))
	// Output:
	// astrid.prod.echo.v1.request
	// echo.v1.request
	// astrid.prod.tool.v1.>
	// astrid.prod.tool.v1.*
}

func ExampleDecode() {
	key := []byte("0123456789abcdef0123456789abcdef")
	st, _ := bus.NewStamper(key, "node-1")

	// A host-stamped message keeps its attribution.
	m := bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{}`), Principal: "alice", Attribution: bus.Verified}
	d := bus.Decode(st.Stamp(m.Topic, &m), bus.Subjects{}, key)
	fmt.Println(d.Principal, d.Attribution, d.Origin)

	// An outside client claiming "verified" is downgraded.
	forged := &nats.Msg{Subject: "counter.v1.increment", Header: nats.Header{
		"Astrid-Principal": {"bob"},
		"Astrid-Env":       {"v2 verified - 1 1764892800000000000 local node-1 " + strings.Repeat("A", 43)},
	}}
	d = bus.Decode(forged, bus.Subjects{}, key)
	fmt.Println(d.Principal, d.Attribution, d.Origin)
	// Output:
	// alice verified system
	// bob claimed external
}

func ExampleOpenKV() {
	s, err := bus.StartServer(bus.ServerConfig{DataDir: exampleDir(), JetStream: true, NoLog: true}, zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown()
	c, err := bus.ConnectInProcess(s, "example", zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := bus.OpenKV(ctx, c, bus.KVConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ns := "alice:capsule:notes"
	_, _ = kv.Put(ctx, ns, "todo.1", []byte(`"buy milk"`))
	_, _ = kv.Put(ctx, ns, "todo.2", []byte(`"call bob"`))
	v, _, _ := kv.Get(ctx, ns, "todo.1")
	keys, _ := kv.Keys(ctx, ns, "todo.", 1024)
	fmt.Println(string(v), keys)
	// Output:
	// "buy milk" [todo.1 todo.2]
}
