package main

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/astrid-go/astrid/bench
BenchmarkIPCThroughput/raw-nats-2   	  670420	      1649 ns/op	 155.22 MB/s	    606337 msgs/s	     692 B/op	       4 allocs/op
BenchmarkIPCThroughput/raw-nats-2   	  754527	      1610 ns/op	 159.02 MB/s	    621164 msgs/s	     684 B/op	       4 allocs/op
BenchmarkIPCThroughput/raw-nats-2   	 1000000	      1088 ns/op	 235.22 MB/s	    918818 msgs/s	     670 B/op	       4 allocs/op
BenchmarkRequestLatency/astrid-2    	   40099	     32179 ns/op	        24.69 p50-us	        92.04 p99-us	    4336 B/op	      51 allocs/op
--- SKIP: BenchmarkScaling
    scaling_test.go:1: set ASTRID_BENCH_SCALING=1
BenchmarkScaling/capsules=1/throughput/astrid-2   	 100	 4000 ns/op	 250000 msgs/s
BenchmarkScaling/capsules=10/throughput/astrid-2  	 100	 3000 ns/op	 330000 msgs/s
BenchmarkScaling/capsules=1/throughput/raw-nats-2 	 100	 1000 ns/op	 900000 msgs/s
BenchmarkScaling/capsules=10/throughput/raw-nats-2	 100	 1100 ns/op	 800000 msgs/s
BenchmarkScaling/capsules=1/latency/astrid-2      	 100	 30000 ns/op	 25 p50-us	 90 p99-us
BenchmarkScaling/capsules=10/latency/astrid-2     	 100	 31000 ns/op	 26 p50-us	 95 p99-us
PASS
ok  	github.com/astrid-go/astrid/bench	164.774s
`

func TestParse(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, unit    string
		median, lo, n float64
	}{
		{"BenchmarkIPCThroughput/raw-nats", "msgs/s", 621164, 606337, 3},
		{"BenchmarkIPCThroughput/raw-nats", "allocs/op", 4, 4, 3},
		{"BenchmarkRequestLatency/astrid", "p99-us", 92.04, 92.04, 1},
		{"BenchmarkScaling/capsules=10/latency/astrid", "p50-us", 26, 26, 1},
	}
	for _, tt := range tests {
		s, ok := res.get(tt.name, tt.unit)
		if !ok {
			t.Errorf("%s %s: missing", tt.name, tt.unit)
			continue
		}
		if s.median != tt.median || s.min != tt.lo || float64(s.n) != tt.n {
			t.Errorf("%s %s = %+v, want median %v min %v n %v", tt.name, tt.unit, s, tt.median, tt.lo, tt.n)
		}
	}
	if got := len(res.names); got != 8 {
		t.Errorf("%d benchmarks, want 8: %v", got, res.names)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", "", errNoBenchmarks},
		{"no benchmark lines", "goos: linux\nPASS\n", errNoBenchmarks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse(strings.NewReader(tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := parse(strings.NewReader("BenchmarkX-2 10 abc ns/op\n")); err == nil {
		t.Error("a non-numeric value parsed without error")
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want stat
	}{
		{[]float64{3}, stat{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, stat{3, 1, 5, 3}},
		{[]float64{4, 1, 3, 2}, stat{2.5, 1, 4, 4}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {621164, "621164"}, {172.9, "173"}, {25.21, "25.2"}, {1.01, "1.01"}, {0.0123, "0.0123"},
	}
	for _, tt := range tests {
		if got := num(tt.in); got != tt.want {
			t.Errorf("num(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNiceStepAndCompact(t *testing.T) {
	steps := []struct{ in, want float64 }{
		{0.9, 1}, {1, 1}, {1.3, 2}, {3, 5}, {7, 10}, {180000, 200000}, {0, 1},
	}
	for _, tt := range steps {
		if got := niceStep(tt.in); got != tt.want {
			t.Errorf("niceStep(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	labels := []struct {
		in   float64
		want string
	}{{0, "0"}, {250000, "250k"}, {1500000, "1.5m"}, {12.5, "12.5"}, {1000, "1k"}}
	for _, tt := range labels {
		if got := compact(tt.in); got != tt.want {
			t.Errorf("compact(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSummaryTable(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.writeSummary(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| benchmark | unit | median | min | max | runs |",
		"| IPCThroughput/raw-nats | msgs/s | 621164 | 606337 | 918818 | 3 |",
		"| RequestLatency/astrid | p50-us | 24.7 | 24.7 | 24.7 | 1 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// TestCharts writes the scaling charts and reads them back: each is a PNG
// of the chart's size with the first series' color on it, and the
// throughput chart has both paths.
func TestCharts(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.scaling("throughput", "msgs/s"); len(got) != 2 || len(got["astrid"]) != 2 || got["astrid"][0].x != 1 {
		t.Fatalf("throughput curves = %v", got)
	}
	dir := t.TempDir()
	files, err := writeCharts(res, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("wrote %v, want 2 charts", files)
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if b := img.Bounds(); b.Dx() != chartW || b.Dy() != chartH {
			t.Errorf("%s is %v, want %dx%d", p, b, chartW, chartH)
		}
		want := colorOf(0)
		found := false
		for y := 0; y < chartH && !found; y++ {
			for x := 0; x < chartW; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				if uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(bl>>8) == want.B {
					found = true
					break
				}
			}
		}
		if !found {
			t.Errorf("%s has no pixel of the first series' color", filepath.Base(p))
		}
	}
}

func TestChartsWithoutScaling(t *testing.T) {
	res, err := parse(strings.NewReader("BenchmarkX-2 10 5 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writeCharts(res, t.TempDir()); err == nil {
		t.Error("no error for results without scaling figures")
	}
}

func TestRun(t *testing.T) {
	in := filepath.Join(t.TempDir(), "results.txt")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"summary", []string{"-in", in, "-summary"}, 0, "| IPCThroughput/raw-nats |"},
		{"charts", []string{"-in", in, "-out", out}, 0, "scaling-p99.png"},
		{"nothing to do", []string{"-in", in}, 2, ""},
		{"bad flag", []string{"-nope"}, 2, ""},
		{"missing file", []string{"-in", filepath.Join(out, "none.txt"), "-summary"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %s)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.want)
			}
		})
	}
}

// nodesSample is BenchmarkScalingNodes output: two runs of nodes=1 (the
// median of two is their mean), the astrid rows out of node order.
const nodesSample = `goos: linux
pkg: github.com/astrid-go/astrid/bench
BenchmarkScalingNodes/nodes=1/raw-nats-2  	  200000	      6000 ns/op	    160000 req/s	        90.0 p50-us	       300.0 p99-us	    1900 B/op	      24 allocs/op
BenchmarkScalingNodes/nodes=1/raw-nats-2  	  200000	      6200 ns/op	    150000 req/s	        92.0 p50-us	       320.0 p99-us	    1900 B/op	      24 allocs/op
BenchmarkScalingNodes/nodes=3/astrid-2    	   50000	     25000 ns/op	     40000 req/s	       350.0 p50-us	      1500 p99-us	    3900 B/op	      43 allocs/op
BenchmarkScalingNodes/nodes=1/astrid-2    	   60000	     20000 ns/op	     50000 req/s	       300.0 p50-us	      1200 p99-us	    3900 B/op	      43 allocs/op
BenchmarkScalingNodes/nodes=2/astrid-2    	   55000	     22000 ns/op	     45000 req/s	       320.0 p50-us	      1300 p99-us	    3900 B/op	      43 allocs/op
BenchmarkScalingNodes/nodes=2/raw-nats-2  	  180000	      6500 ns/op	    140000 req/s	        95.0 p50-us	       350.0 p99-us	    1900 B/op	      24 allocs/op
PASS
`

func TestScalingNodes(t *testing.T) {
	res, err := parse(strings.NewReader(nodesSample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		unit, path string
		want       []scalingPoint
	}{
		{"req/s", "astrid", []scalingPoint{{1, 50000}, {2, 45000}, {3, 40000}}},
		{"req/s", "raw-nats", []scalingPoint{{1, 155000}, {2, 140000}}},
		{"p99-us", "astrid", []scalingPoint{{1, 1200}, {2, 1300}, {3, 1500}}},
		{"p50-us", "raw-nats", []scalingPoint{{1, 91}, {2, 95}}},
	}
	for _, tt := range tests {
		t.Run(tt.unit+"/"+tt.path, func(t *testing.T) {
			curves := res.scalingNodes(tt.unit)
			if len(curves) != 2 {
				t.Errorf("%d paths, want astrid and raw-nats: %v", len(curves), curves)
			}
			if got := curves[tt.path]; !slices.Equal(got, tt.want) {
				t.Errorf("%s %s = %v, want %v", tt.path, tt.unit, got, tt.want)
			}
		})
	}
	// The capsule-count curves do not pick up node rows, nor the other way.
	if got := res.scaling("latency", "p99-us"); len(got) != 0 {
		t.Errorf("node rows parsed as capsule-count curves: %v", got)
	}
	capsules, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := capsules.scalingNodes("p99-us"); len(got) != 0 {
		t.Errorf("capsule rows parsed as node curves: %v", got)
	}
}

// TestChartsNodes checks which charts each kind of results file yields:
// node rows alone give the two node charts, a combined file all four.
func TestChartsNodes(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"nodes only", nodesSample, []string{"scaling-nodes-throughput.png", "scaling-nodes-p99.png"}},
		{"capsules only", sample, []string{"scaling-throughput.png", "scaling-p99.png"}},
		{"combined", sample + nodesSample, []string{"scaling-throughput.png", "scaling-p99.png",
			"scaling-nodes-throughput.png", "scaling-nodes-p99.png"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files, err := writeCharts(res, dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range files {
				got = append(got, filepath.Base(p))
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				_, err = png.Decode(f)
				f.Close()
				if err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("wrote %v, want %v", got, tt.want)
			}
		})
	}
}

// TestXAxis checks the two x scales: capsule counts on a log scale (10 a
// third of the way from 1 to 1,000), node counts on a linear one (2 half
// way from 1 to 3).
func TestXAxis(t *testing.T) {
	const x0, x1 = 100, 720 // usable columns 110..710
	tests := []struct {
		name   string
		linear bool
		lo, hi float64
		x      float64
		want   int
	}{
		{"log low end", false, 1, 1000, 1, 110},
		{"log high end", false, 1, 1000, 1000, 710},
		{"log decade", false, 1, 1000, 10, 310},
		{"linear middle", true, 1, 3, 2, 410},
		{"linear high end", true, 1, 3, 3, 710},
		{"single value", true, 2, 2, 2, 410},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chart{linearX: tt.linear}
			if got := c.xAxis(tt.lo, tt.hi, x0, x1)(tt.x); got != tt.want {
				t.Errorf("x %v on [%v, %v] at column %d, want %d", tt.x, tt.lo, tt.hi, got, tt.want)
			}
		})
	}
}
