// Package manifests parses and validates capsule manifests (Capsule.toml),
// in the current Astrid form and in every legacy form Astrid has used, into
// one current model: Manifest.
//
// Parse decodes the TOML (BurntSushi/toml), then translates legacy
// constructs ([[interceptor]], capabilities.ipc_publish/ipc_subscribe,
// [dependencies], [[topic]], ...) and finally validates the result against
// the rules of astrid-semantics §1.1 plus this runtime's own [limits] and
// [supervision] tables. Problems are collected, never first-fail: each is a
// Diagnostic with file, line:column, the dotted TOML key path and a message,
// rendered as
//
//	Capsule.toml:12:1: subscribe."tool.v1.execute".priority: priority requires handler: only interceptor bindings are ordered
//
// Warnings (unknown keys, deprecated legacy spellings, settings the runtime
// ignores) never make a manifest invalid. docs/manifest.md is the user
// reference for every accepted key.
//
// manifests imports nothing from this project; its only third-party
// dependencies are BurntSushi/toml and Masterminds/semver.
//
// # Positions
//
// BurntSushi/toml does not expose key positions, so the package re-scans
// accepted input with a small locator (locate.go) that tracks table headers,
// array-of-tables indices, dotted and quoted keys, inline tables and array
// elements. Columns count bytes, as Go tools do.
//
// # Set tracking
//
// Limits and Supervision hold effective values with defaults applied; their
// Set map records which TOML keys the manifest wrote, so node-wide defaults
// can later apply to the rest.
//
// # Concurrency
//
// Parse, Load, Discover, Encode and the Validate* functions are safe for
// concurrent use: they share no mutable state. A returned *Manifest is a
// plain value owned by the caller; treat it as read-only once shared.
//
// # Errors
//
// Parse and Load return a *ValidationError, for which errors.Is(err,
// ErrInvalid) holds, when a manifest has error-level diagnostics; it carries
// those diagnostics. Load and Discover wrap I/O errors (and ErrNotFound when
// no Capsule.toml is where one was asked for). Encode fails only on free-form
// values of a type TOML cannot represent. Messages start with "manifests: ".
package manifests
