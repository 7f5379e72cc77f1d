// Package bench is astrid's performance suite (issue 7): Go benchmarks that
// measure each path of the runtime and, in the same run, the raw part
// underneath it (nats.go on the same embedded server, wazero with no astrid
// host), so every figure is read as a ratio against its baseline measured
// on the same machine at the same time. docs/benchmarks.md holds the table,
// the command and what limits each row.
//
// Each row is one Benchmark function whose sub-benchmarks are the raw
// baseline and our path, for example BenchmarkIPCThroughput/raw-nats and
// BenchmarkIPCThroughput/astrid. Benchmarks report msgs/s, p50-us and
// p99-us with b.ReportMetric where they apply; run them with -benchmem.
// TestPaths runs every path once with a small count, so a plain go test
// proves the harness measures what it says (every message counted, every
// request answered).
//
// The guest under bench/guests/sink is built from source (capsuletest) and
// serves every row; examples/echo and capsule/testdata/guests/crashon serve
// the latency and loss rows.
//
// BenchmarkScaling (1 to 1,000 capsules on one node) and
// BenchmarkScalingNodes (1 to 3 nodes of one in-process cluster) run only
// when ASTRID_BENCH_SCALING is set; cmd/benchplot draws their curves.
// BenchmarkGuestCall is not a row of the table: it shows what entering a
// guest costs with and without wazero's termination checks. BENCH_LOG=warn
// (or any zerolog level) sends node logs to stderr, and ASTRID_BENCH_CACHE
// names a wazero compilation cache kept across runs, so a profiled run does
// not profile the first compile.
//
// bench is black-box and may import every package of the module; it alone
// (with integration) may import wazero and nats.go directly, for the raw
// baselines. It has no non-test API.
//
// # Concurrency
//
// Benchmarks run one at a time; each starts its own node and tears it down.
//
// # Errors
//
// A path that loses a message, gets an error reply where none is expected or
// times out fails the benchmark (b.Fatal); the loss row reports lost
// requests as a metric instead, since its target is a count.
package bench
