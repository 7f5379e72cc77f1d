//go:build !wasip1

package main

// badPointer needs the wasm host; outside wasip1 it reports internal.
func badPointer(string) int64 { return -12 }
