// Package loop holds the state shared by package sdk, which registers a
// capsule's run loop, and package sdk/runloop, which exports it as run.
//
// It may import nothing. Its variables are written during package
// initialisation only and read by the run export.
//
// # Concurrency
//
// Not goroutine-safe; written during init, read afterwards.
//
// # Errors
//
// None.
package loop

// Exported is set by sdk/runloop's init: the run export is linked in. Package
// init order guarantees it is set before any init of package main runs.
var Exported bool

// Fn is the run loop registered with sdk.Run, or nil.
var Fn func() error
