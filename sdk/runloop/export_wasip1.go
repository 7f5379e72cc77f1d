//go:build wasip1

package runloop

//go:wasmexport run
func run() { runMain() }
