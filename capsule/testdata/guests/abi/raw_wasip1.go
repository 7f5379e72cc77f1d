//go:build wasip1

package main

import (
	"runtime"
	"unsafe"
)

// A raw import, bypassing the SDK, so the test can hand the host pointers
// outside linear memory.
//
//go:wasmimport astrid_v1 kv_get
func rawKVGet(keyPtr, keyLen, outPtr, outCap uint32) int64

// badPointer calls kv_get with an out-of-range pointer and length for arg
// ("key" or "out") and returns the host's raw return value (the ABI wants
// -2, invalid-input).
func badPointer(arg string) int64 {
	key := []byte("k")
	var o [16]byte
	kp, kl := uint32(uintptr(unsafe.Pointer(&key[0]))), uint32(len(key))
	op, oc := uint32(uintptr(unsafe.Pointer(&o[0]))), uint32(len(o))
	const bad, badLen = 0xFFFF_FF00, 0x1000
	if arg == "out" {
		op, oc = bad, badLen
	} else {
		kp, kl = bad, badLen
	}
	n := rawKVGet(kp, kl, op, oc)
	runtime.KeepAlive(key)
	runtime.KeepAlive(&o)
	return n
}
