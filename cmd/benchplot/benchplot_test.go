package main

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
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
