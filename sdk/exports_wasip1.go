//go:build wasip1

package sdk

import "unsafe"

// Guest exports of host ABI v1 (docs/abi.md, "Guest exports"). The logic is
// in registry.go, which builds and is tested on every platform; this file
// only converts between guest addresses and slices.

// addr returns the guest linear-memory address of b's first byte.
func addr(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// pack returns the (ptr << 32) | len form of a guest-owned result; 0 for an
// empty one.
func pack(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(addr(b))<<32 | uint64(len(b))
}

// exchangeArg resolves a (ptr, len) argument that the host wrote into the
// exchange buffer. A range outside it is a host bug: trap loudly.
func exchangeArg(ptr, n uint32) []byte {
	b, ok := exchangeRange(addr(exch), ptr, n)
	if !ok {
		panic("sdk: host passed a range outside the exchange buffer")
	}
	return b
}

//go:wasmexport astrid_buffer
func astridBuffer(size uint32) uint32 {
	return addr(exchangeBuffer(size))
}

//go:wasmexport astrid_hook_trigger
func astridHookTrigger(actionPtr, actionLen, payloadPtr, payloadLen uint32) uint64 {
	return pack(trigger(exchangeArg(actionPtr, actionLen), exchangeArg(payloadPtr, payloadLen)))
}

//go:wasmexport astrid_hook_batch
func astridHookBatch(actionPtr, actionLen, payloadPtr, payloadLen uint32) uint64 {
	return pack(batch(exchangeArg(actionPtr, actionLen), exchangeArg(payloadPtr, payloadLen), hookNextHost))
}

// hookNextHost hands res to the host's hook_next and decodes its answer:
// > 0 is 1<<62 | action_len<<32 | payload_len of the next message, 0 means
// the host took res and has nothing more, < 0 that it did not take res.
func hookNextHost(res []byte) (al, pl uint32, taken, more bool) {
	n := hookNext(unsafe.Pointer(unsafe.SliceData(res)), uint32(len(res)))
	switch {
	case n < 0:
		return 0, 0, false, false
	case n == 0:
		return 0, 0, true, false
	}
	return uint32(n>>32) & 0x3fffffff, uint32(n), true, true
}

//go:wasmexport astrid_install
func astridInstall() uint64 {
	return pack(install())
}

//go:wasmexport astrid_upgrade
func astridUpgrade(prevPtr, prevLen uint32) uint64 {
	return pack(upgrade(string(exchangeArg(prevPtr, prevLen))))
}
