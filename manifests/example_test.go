package manifests_test

import (
	"errors"
	"fmt"

	"github.com/astrid-go/astrid/manifests"
)

func ExampleParse() {
	src := []byte(`
[package]
name = "weather-tools"
version = "1.2.0"

[subscribe]
"tool.v1.execute.get_weather" = { wit = "opaque", handler = "get_weather" }
"tool.v1.request.describe" = { wit = "opaque", priority = 50 }

[[interceptor]]
event = "user.v1.prompt"
action = "on_prompt"
`)
	m, diags, err := manifests.Parse("Capsule.toml", src)
	for _, d := range diags {
		fmt.Println(d)
	}
	fmt.Println("invalid:", errors.Is(err, manifests.ErrInvalid))
	for _, ic := range m.Interceptors() {
		fmt.Println(ic.Topic, "->", ic.Action, ic.Priority)
	}
	// Output:
	// Capsule.toml:8:48: subscribe."tool.v1.request.describe".priority: priority requires handler: only interceptor bindings are ordered
	// Capsule.toml:10:3: interceptor[0]: warning: [[interceptor]] is deprecated since Astrid 0.8: use [subscribe]."user.v1.prompt" = { wit = "opaque", handler = "on_prompt" }
	// invalid: true
	// tool.v1.execute.get_weather -> get_weather 100
	// user.v1.prompt -> on_prompt 100
}
