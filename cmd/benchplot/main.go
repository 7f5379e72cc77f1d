package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the command: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchplot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "bench/results/latest.txt", "Go benchmark results file")
	summary := fs.Bool("summary", false, "print the median, min, max and runs of every figure as a Markdown table")
	out := fs.String("out", "", "write the scaling charts (PNG) into this directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*summary && *out == "" {
		fmt.Fprintln(stderr, "benchplot: nothing to do: give -summary and/or -out DIR")
		return 2
	}
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(stderr, "benchplot:", err)
		return 1
	}
	defer f.Close()
	res, err := parse(f)
	if err != nil {
		fmt.Fprintf(stderr, "%v (%s)\n", err, *in)
		return 1
	}
	if *summary {
		if err := res.writeSummary(stdout); err != nil {
			fmt.Fprintln(stderr, "benchplot:", err)
			return 1
		}
	}
	if *out != "" {
		files, err := writeCharts(res, *out)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, p := range files {
			fmt.Fprintln(stdout, "wrote", p)
		}
	}
	return 0
}

// writeCharts draws the scaling curves found in res into dir and returns
// the files written: the capsule-count charts when res has BenchmarkScaling
// rows, the node-count charts when it has BenchmarkScalingNodes rows. It
// fails when res has neither.
func writeCharts(res *results, dir string) ([]string, error) {
	charts := []struct {
		file   string
		curves map[string][]scalingPoint
		c      chart
	}{
		{"scaling-throughput.png", res.scaling("throughput", "msgs/s"),
			chart{title: "one-way throughput, 256 b", xLabel: "capsules on one node", yLabel: "msgs/s"}},
		{"scaling-p99.png", res.scaling("latency", "p99-us"),
			chart{title: "request/reply p99, 256 b", xLabel: "capsules on one node", yLabel: "p99 (us)"}},
		{"scaling-nodes-throughput.png", res.scalingNodes("req/s"),
			chart{title: "request throughput, 256 b", xLabel: "nodes in the cluster (16 requesters)", yLabel: "req/s", linearX: true}},
		{"scaling-nodes-p99.png", res.scalingNodes("p99-us"),
			chart{title: "request/reply p99, 256 b", xLabel: "nodes in the cluster (16 requesters)", yLabel: "p99 (us)", linearX: true}},
	}
	var files []string
	for _, ch := range charts {
		curves := ch.curves
		if len(curves) == 0 {
			continue
		}
		names := make([]string, 0, len(curves))
		for n := range curves {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ch.c.series = append(ch.c.series, series{name: n, pts: curves[n]})
		}
		p := filepath.Join(dir, ch.file)
		f, err := os.Create(p)
		if err != nil {
			return files, fmt.Errorf("benchplot: %w", err)
		}
		err = ch.c.writePNG(f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("benchplot: %w", cerr)
		}
		if err != nil {
			return files, err
		}
		files = append(files, p)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("benchplot: no BenchmarkScaling or BenchmarkScalingNodes figures to plot")
	}
	return files, nil
}
