// Package supervisor is the astrid node: it boots capsules in dependency
// order, supervises their actors, and owns everything node-wide.
//
// Node (Start, Load, Reload, Shutdown) brings up NATS (embedded with
// JetStream, or an external server), the wasm engine, the actor system with
// the supervisor actor and the interceptor router, and the per-principal
// services: quota profiles (FileProfiles), stored config (FileConfigStore),
// secrets (FileSecrets), per-principal log files (FileLogs), the
// quota-aware KV store, install records and lifecycle hooks, elicit over
// NATS, and Prometheus metrics. The supervisor actor applies each capsule's
// restart policy (intensity, capped exponential backoff with jitter, reset
// after a stable period, quarantine or escalation), its group's strategy
// (one_for_one, one_for_all, rest_for_one), readiness timeouts, pausing of
// dependents, and hot upgrades (a new generation beside the old one,
// switched on readiness, rolled back on failure), and publishes events on
// astrid.v1.capsule.<id>.<verb>.
//
// supervisor may import actors, capsule, hoststate, bus and manifests.
//
// # Concurrency
//
// Node's Start, Load, Reload and Shutdown are called from one goroutine;
// Capsules, Metrics and the stores are goroutine-safe. The supervisor
// actor's state is owned by the actor; FileProfiles swaps an immutable set
// atomically; FileSecrets and FileConfigStore do one file operation per
// call (writes rename a temporary file); FileLogs guards its open files
// with a table lock and a lock per file.
//
// # Errors
//
// Load and Reload report per-capsule failures in their reports rather than
// failing the node; ErrLogsClosed is returned by a closed FileLogs;
// configuration files are reported with their path and the offending key.
package supervisor
