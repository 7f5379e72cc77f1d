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
// In a cluster (cluster.go, singleton.go) the node has an id (persisted in
// its data dir) and labels, publishes a heartbeat with its inventory on
// astrid.v1.node.<id>.heartbeat, keeps a table of its peers (Node.Peers)
// and reports a peer silent for GoneAfter intervals on
// astrid.v1.node.<id>.gone. A singleton capsule runs only while the node
// holds its lease in the JetStream KV bucket astrid_leases (fenced by the
// revision); elsewhere it is reported StateStandby.
//
// Every node runs the control service (control.go, docs/control.md): a
// NATS micro service "astrid-ctl" answering ping, ps, start, stop, restart,
// upgrade, elicit and deploy on astrid.v1.ctl.<verb>.<node id> and
// astrid.v1.ctl.<verb>.all, backed by Node.StopCapsule, StartCapsule,
// RestartCapsule, Upgrade and Deploy (capsule archives from the object
// store bucket astrid_capsules, packed by PackCapsule).
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
// with a table lock and a lock per file. Heartbeats run on one goroutine
// per node and the peer table has its own lock; each singleton's lease is
// owned by one goroutine, all stopped and waited for by Shutdown.
//
// # Errors
//
// Load and Reload report per-capsule failures in their reports rather than
// failing the node; ErrLogsClosed is returned by a closed FileLogs;
// control operations return ErrUnknownCapsule, ErrCapsuleState,
// ErrNotReady, ErrInvalidRequest or ErrShuttingDown (wrapped), which the
// control service maps to error codes 404, 409, 504, 400 and 503;
// configuration files are reported with their path and the offending key.
package supervisor
