// Package bus is astrid's NATS adapter: the embedded server, client
// connections, the mapping of Astrid topics onto NATS subjects, Astrid's
// two wildcard grammars, the kernel-stamped message envelope, and the
// capsule key-value store on JetStream.
//
// It is the only package that imports nats.go and nats-server, and it
// imports nothing from the project. Besides the standard library it uses
// zerolog for logging. Tests elsewhere use bus/bustest for real embedded
// servers.
//
// # Server and connections
//
// [StartServer] runs nats-server inside the process ([ServerConfig]: client
// listener, JetStream under DataDir/jetstream, clustering), waits until it
// accepts connections and sends its log lines to zerolog (warnings and
// errors by default). [ConnectInProcess] reaches it without a socket and
// [Connect] dials any server or cluster. A [Conn] created
// [WithStamper] publishes as the kernel; without one it publishes as an
// outside client would. [Conn.SubscribeMessages] delivers decoded
// messages; [Conn.Reply] and [Conn.ReplyError] answer requests.
//
// # Subjects
//
// An Astrid topic travels on the NATS subject of the same name, behind an
// optional deployment prefix ([Subjects]): with Prefix "astrid.prod" the
// topic "echo.v1.request" is the subject "astrid.prod.echo.v1.request".
// Topics are checked by [ValidateTopic] (at most 256 bytes and 8
// segments, printable ASCII, no wildcard) and subscribe patterns by
// [ValidatePattern] (at most 20 segments, `*` only as a whole segment).
// Both refuse NATS's reserved namespaces (`$JS`, `$KV`, `$SYS`: any first
// segment starting with `$`; and `_INBOX`), and a subscription whose
// subject starts with a wildcard never delivers those subjects, so a
// capsule subscribed to `*` sees neither KV writes nor other clients'
// replies.
//
// # Wildcards
//
// Astrid has two grammars (reference spec §4.2):
//
//   - Route (subtree) grammar, for subscription delivery and for publish
//     and subscribe ACLs ([MatchRoute], [CoversRoute]): a middle `*` is one
//     segment, a trailing `*` is one or more. `tool.v1.*` matches
//     `tool.v1.execute` and `tool.v1.execute.get_weather` but not `tool.v1`.
//     On NATS it becomes `tool.v1.>` ([RouteToNATS]).
//   - Strict grammar, for interceptor bindings ([MatchStrict]): every `*`
//     is exactly one segment and lengths must be equal. `tool.v1.*` matches
//     `tool.v1.execute` only. On NATS it is the same subject
//     ([StrictToNATS]).
//
// A subscribe ACL check is pattern against pattern: [CoversRoute](acl, p)
// holds when every topic p can match is matched by acl. The ACL `a.*`
// covers `a.b`, `a.b.*` and `a.*`; the ACL `a.b` does not cover `a.*`.
// All three matchers allocate nothing and agree with nats-server's own
// subject matching (FuzzMatch checks this against
// server.SubjectMatchesFilter).
//
// # Envelope and trust
//
// The body of a NATS message is the payload; the envelope rides in two
// headers (plus one on error replies):
//
//	Astrid-Principal: <principal>     omitted for system messages
//	Astrid-Env: v2 <attribution> <source> <seq> <unixnano> <origin> <node> <sig>
//	Astrid-Error: <code>: <detail>    error replies only; unsigned; the
//	                                  body is an ErrorReply (Conn.ReplyError)
//
// The Astrid-Env fields are separated by single spaces:
//
//	v2           the layout version
//	attribution  system | verified | claimed
//	source       publishing capsule's load-session UUID
//	seq          stamping node's sequence number, decimal
//	unixnano     publish time, decimal nanoseconds since the Unix epoch (UTC)
//	origin       local | remote | system (| external, never sent)
//	node         stamping node id
//	sig          HMAC-SHA256 under the node key, base64url without padding
//	             (43 characters)
//
// source, origin and node are tokens: "-" stands for an empty value, and
// any byte outside printable ASCII, a space or '%' is written %XX
// (upper-case hex), as is a value that is exactly "-" ("%2D"); ordinary
// values (UUIDs, node ids, the origin words) travel as they are. The MAC
// covers the version tag "astrid-envelope-v2", then, each prefixed with its
// length as a uvarint: the NATS subject, the reply subject, the
// Astrid-Principal value, the Astrid-Env value up to the space before sig,
// and the payload. A stamped message reads with `nats sub` as, for
// example:
//
//	Astrid-Principal: alice
//	Astrid-Env: v2 verified 550e8400-e29b-41d4-a716-446655440000 42 1764892800123456789 local node-1 3q2-7w...
//
// A [Stamper] (node key and node id) strips every Astrid-* header a caller
// supplied, in any letter case, and sets its own. [Decode] trusts a message
// only if its Astrid-Env header (exactly that name, exactly once, exactly
// eight fields, version v2) carries a signature that verifies under the
// node key and every field parses. Anything else comes from an outside
// client: its principal is its Astrid-Principal header if that is a valid
// principal id (1 to 64 of [a-zA-Z0-9_-]) and "default" otherwise, its
// attribution is claimed, its origin "external", and the rest of its
// Astrid-Env header is ignored. Nodes that must trust each other's stamps
// share the key. The signature binds the payload and both subjects, so
// stamped headers cannot be replayed onto other content; an identical
// message can still be re-sent verbatim. [EnvelopeNode] reads the node
// field without verifying it, for display only.
//
// # KV layout
//
// [KV] stores capsule state in one JetStream KV bucket (default
// "astrid_kv", history 1, values up to 1 MiB). A namespace
// "{principal}:capsule:{capsule_id}" and the key are escaped into NATS key
// tokens: bytes of [A-Za-z0-9_-] stay, every other byte becomes "=HH"
// (upper-case hex), and the namespace's ':'-separated parts and the key are
// joined by dots:
//
//	namespace "alice:capsule:notes", key "todo.1 b"
//	bucket key "alice.capsule.notes.todo=2E1=20b"
//
// The escaping is reversible and preserves prefixes, and an escaped key is
// a single token, so the filter "alice.capsule.notes.*" selects exactly one
// namespace: Keys, ClearPrefix and Usage read only that namespace. CAS
// maps onto JetStream revisions (create for absent, update at the revision
// whose value was compared).
//
// A replicated bucket (KVConfig.Replicas > 1, a NATS cluster) reads
// through its stream leader rather than with direct gets, which any
// replica may answer before it applied the latest write: a value written
// through one node reads back through any other.
//
// # Clusters: queue groups and leases
//
// [Conn.QueueSubscribeMessages] joins a NATS queue group: of all members on
// all servers of the cluster, one gets each message (the node routers use
// it, so a handler served on several nodes answers each request once).
// [Leases] is a KV bucket (default "astrid_leases") of leases written only
// conditionally: [Leases.Create] when absent or released, [Leases.Update]
// and [Leases.Delete] at an expected revision, which is the fencing token;
// of two writers at one revision exactly one wins, the other gets
// [ErrCASMismatch]. [Leases.Watch] follows a lease; [Leases.StepDownFrom]
// moves the bucket's stream leader off a given server.
//
// # Services and objects
//
// [NewService] runs an instance of a NATS micro service (nats.go/micro:
// `nats micro ls` finds it) whose endpoints have no queue group, so every
// instance on a subject answers; [Conn.Gather] collects those answers
// (until enough, a quiet window, or the context ends) and
// [Conn.RequestService] takes the first. A handler's *[ServiceError] (or
// any error, as code "500") becomes a micro error reply. The node control
// API lives on [ControlTopic] subjects. [ObjectStore] wraps a JetStream
// object store bucket (capsule archives for deploys).
//
// # Concurrency
//
// Everything exported is safe for concurrent use: [Server], [Conn],
// [Stamper] (atomic sequence) and [KV]; [Subjects] and [Message] are plain
// values. Subscription callbacks run on nats.go's goroutine for that
// subscription, one message at a time; the package starts no goroutines of
// its own, except one per [Leases.Watch] until it is stopped.
//
// # Errors
//
// Sentinels are prefixed "bus: " and compared with errors.Is:
// [ErrInvalidTopic], [ErrTooLarge], [ErrNoResponders], [ErrTimeout],
// [ErrClosed], [ErrServerStart], [ErrKeyNotFound], [ErrCASMismatch],
// [ErrTooManyKeys], [ErrInvalidKey], [ErrInvalidNamespace],
// [ErrObjectNotFound],
// [ErrInvalidAttribution], [ErrWeakKey]. [TopicError] and [KeyError] carry
// TooLarge so that callers can choose the ABI's too-large or invalid-input.
// NATS errors are wrapped with %w and stay inspectable.
package bus
