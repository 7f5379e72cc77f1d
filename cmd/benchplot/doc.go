// Command benchplot reads a Go benchmark results file (the output of
// go test -bench, such as bench/results/latest.txt) and
//
//   - with -summary, prints the median, minimum, maximum and run count of
//     every benchmark and metric as a Markdown table, the figures
//     docs/benchmarks.md quotes;
//   - with -out DIR, draws the scaling curves of BenchmarkScaling
//     (bench/scaling_test.go) as PNG charts in DIR: scaling-throughput.png
//     (msgs/s against the capsule count) and scaling-p99.png (request p99
//     against the capsule count), one line per path (astrid, raw-nats);
//     and, when the file has BenchmarkScalingNodes rows
//     (bench/nodes_scaling_test.go), scaling-nodes-throughput.png (req/s
//     against the node count of the cluster) and scaling-nodes-p99.png
//     (request p99 against the node count). Each pair is drawn only when
//     its rows are present, so one file may hold both kinds.
//
// Usage:
//
//	go run ./cmd/benchplot -in bench/results/latest.txt -summary
//	go run ./cmd/benchplot -in bench/results/scaling.txt -out docs
//
// PNGs are written with image/png from the standard library and a built-in
// 5x7 bitmap font; benchplot has no dependencies outside the standard
// library and imports nothing from the module.
//
// # Concurrency
//
// Single goroutine.
//
// # Errors
//
// A file with no benchmark lines, an unreadable file or an unwritable
// output directory ends the command with exit code 1 and a message on
// stderr; bad flags exit with 2.
package main
