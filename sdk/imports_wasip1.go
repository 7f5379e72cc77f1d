//go:build wasip1

package sdk

import "unsafe"

// Raw imports of host ABI v1 (module astrid_v1, docs/abi.md). Pointers are
// passed as unsafe.Pointer (an i32 in wasm) so the buffers stay live for the
// duration of the call; the wrappers in host.go keep them referenced anyway.

//go:wasmimport astrid_v1 ipc_publish
func ipcPublish(topicPtr unsafe.Pointer, topicLen uint32, payloadPtr unsafe.Pointer, payloadLen uint32) int64

//go:wasmimport astrid_v1 ipc_reply
func ipcReply(payloadPtr unsafe.Pointer, payloadLen uint32) int64

//go:wasmimport astrid_v1 ipc_subscribe
func ipcSubscribe(patternPtr unsafe.Pointer, patternLen uint32) int64

//go:wasmimport astrid_v1 ipc_unsubscribe
func ipcUnsubscribe(handle int64) int64

//go:wasmimport astrid_v1 ipc_poll
func ipcPoll(handle int64, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 ipc_recv
func ipcRecv(handle int64, timeoutMs int64, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 ipc_interceptor_bindings
func ipcInterceptorBindings(outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 kv_get
func kvGet(keyPtr unsafe.Pointer, keyLen uint32, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 kv_set
func kvSet(keyPtr unsafe.Pointer, keyLen uint32, valPtr unsafe.Pointer, valLen uint32) int64

//go:wasmimport astrid_v1 kv_delete
func kvDelete(keyPtr unsafe.Pointer, keyLen uint32) int64

//go:wasmimport astrid_v1 kv_list_keys
func kvListKeys(prefixPtr unsafe.Pointer, prefixLen uint32, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 kv_cas
func kvCAS(keyPtr unsafe.Pointer, keyLen uint32, expectedPtr unsafe.Pointer, expectedLen uint32, newPtr unsafe.Pointer, newLen uint32) int64

//go:wasmimport astrid_v1 kv_clear_prefix
func kvClearPrefix(prefixPtr unsafe.Pointer, prefixLen uint32) int64

//go:wasmimport astrid_v1 sys_log
func sysLog(level int32, msgPtr unsafe.Pointer, msgLen uint32) int64

//go:wasmimport astrid_v1 sys_get_config
func sysGetConfig(keyPtr unsafe.Pointer, keyLen uint32, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 sys_get_caller
func sysGetCaller(outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 sys_clock_ms
func sysClockMs() int64

//go:wasmimport astrid_v1 sys_sleep_ns
func sysSleepNs(ns int64) int64

//go:wasmimport astrid_v1 sys_random_bytes
func sysRandomBytes(outPtr unsafe.Pointer, n uint32) int64

//go:wasmimport astrid_v1 sys_signal_ready
func sysSignalReady() int64

//go:wasmimport astrid_v1 result_read
func resultRead(outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 sys_elicit
func sysElicit(reqPtr unsafe.Pointer, reqLen uint32, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport astrid_v1 sys_has_secret
func sysHasSecret(keyPtr unsafe.Pointer, keyLen uint32) int64

//go:wasmimport astrid_v1 hook_next
func hookNext(resultPtr unsafe.Pointer, resultLen uint32) int64
