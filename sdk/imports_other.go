//go:build !wasip1

package sdk

import "unsafe"

// Outside wasip1 there is no astrid host. These stand-ins let capsules and
// this package build, vet and unit-test on the host: every host function
// fails with Internal, and result_read yields noHostDetail.

const noHostDetail = "sdk: not running inside an astrid host"

const noHost = -int64(Internal)

func ipcPublish(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64   { return noHost }
func ipcReply(unsafe.Pointer, uint32) int64                             { return noHost }
func ipcSubscribe(unsafe.Pointer, uint32) int64                         { return noHost }
func ipcUnsubscribe(int64) int64                                        { return noHost }
func ipcPoll(int64, unsafe.Pointer, uint32) int64                       { return noHost }
func ipcRecv(int64, int64, unsafe.Pointer, uint32) int64                { return noHost }
func ipcInterceptorBindings(unsafe.Pointer, uint32) int64               { return noHost }
func kvGet(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64        { return noHost }
func kvSet(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64        { return noHost }
func kvDelete(unsafe.Pointer, uint32) int64                             { return noHost }
func kvListKeys(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64   { return noHost }
func sysLog(int32, unsafe.Pointer, uint32) int64                        { return noHost }
func sysGetConfig(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 { return noHost }
func sysGetCaller(unsafe.Pointer, uint32) int64                         { return noHost }
func sysClockMs() int64                                                 { return noHost }
func sysSleepNs(int64) int64                                            { return noHost }
func sysRandomBytes(unsafe.Pointer, uint32) int64                       { return noHost }
func sysSignalReady() int64                                             { return noHost }
func kvClearPrefix(unsafe.Pointer, uint32) int64                        { return noHost }
func kvCAS(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 {
	return noHost
}

func resultRead(outPtr unsafe.Pointer, outCap uint32) int64 {
	if outCap < uint32(len(noHostDetail)) {
		return -int64(TooLarge)
	}
	copy(unsafe.Slice((*byte)(outPtr), outCap), noHostDetail)
	return int64(len(noHostDetail))
}
func sysElicit(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 { return noHost }
func sysHasSecret(unsafe.Pointer, uint32) int64                      { return noHost }
