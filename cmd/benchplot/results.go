package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// errNoBenchmarks reports a results file without any benchmark line.
var errNoBenchmarks = errors.New("benchplot: no benchmark lines in the input")

// results holds every figure of a results file: per benchmark (name
// without the -GOMAXPROCS suffix), per unit, one value per run, in file
// order.
type results struct {
	names  []string // benchmarks in order of first appearance
	units  map[string][]string
	values map[string]map[string][]float64
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads go test -bench output; lines that are not benchmark results
// (headers, PASS, logs) are skipped.
func parse(r io.Reader) (*results, error) {
	res := &results{units: map[string][]string{}, values: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		if res.values[name] == nil {
			res.names = append(res.names, name)
			res.values[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchplot: %s: value %q: %w", name, f[i], err)
			}
			unit := f[i+1]
			if _, seen := res.values[name][unit]; !seen {
				res.units[name] = append(res.units[name], unit)
			}
			res.values[name][unit] = append(res.values[name][unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchplot: read: %w", err)
	}
	if len(res.names) == 0 {
		return nil, errNoBenchmarks
	}
	return res, nil
}

// stat is the median, minimum and maximum of one figure's runs.
type stat struct {
	median, min, max float64
	n                int
}

func summarize(vs []float64) stat {
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{median: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

// get returns the summary of name's unit, if present.
func (r *results) get(name, unit string) (stat, bool) {
	vs := r.values[name][unit]
	if len(vs) == 0 {
		return stat{}, false
	}
	return summarize(vs), true
}

// writeSummary prints a Markdown table of every figure.
func (r *results) writeSummary(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| benchmark | unit | median | min | max | runs |\n|---|---|---:|---:|---:|---:|\n")
	for _, name := range r.names {
		for _, unit := range r.units[name] {
			s, _ := r.get(name, unit)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d |\n",
				strings.TrimPrefix(name, "Benchmark"), unit, num(s.median), num(s.min), num(s.max), s.n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num formats a figure with three significant digits (more for large
// integers), without exponent notation.
func num(v float64) string {
	switch a := abs(v); {
	case a == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// scalingPoint is one capsule count of a scaling curve.
type scalingPoint struct {
	x, y float64
}

var scalingName = regexp.MustCompile(`^BenchmarkScaling/capsules=(\d+)/(throughput|latency)/(.+)$`)

// scaling extracts the curves of BenchmarkScaling: for kind "throughput"
// the median msgs/s, for "latency" the median p99-us, per path, sorted by
// capsule count.
func (r *results) scaling(kind, unit string) map[string][]scalingPoint {
	return r.curves(scalingName, unit, func(m []string) (x, path string, ok bool) {
		return m[1], m[3], m[2] == kind
	})
}

var scalingNodesName = regexp.MustCompile(`^BenchmarkScalingNodes/nodes=(\d+)/(.+)$`)

// scalingNodes extracts the curves of BenchmarkScalingNodes: the median of
// unit (req/s, p50-us or p99-us) per path, sorted by node count.
func (r *results) scalingNodes(unit string) map[string][]scalingPoint {
	return r.curves(scalingNodesName, unit, func(m []string) (x, path string, ok bool) {
		return m[1], m[2], true
	})
}

// curves collects, per path, the median of unit of every benchmark whose
// name matches re and which pick keeps, at the x pick reads from the name;
// each curve is sorted by x.
func (r *results) curves(re *regexp.Regexp, unit string, pick func(m []string) (x, path string, ok bool)) map[string][]scalingPoint {
	out := map[string][]scalingPoint{}
	for _, name := range r.names {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		xs, path, keep := pick(m)
		s, ok := r.get(name, unit)
		if !keep || !ok {
			continue
		}
		x, _ := strconv.ParseFloat(xs, 64)
		out[path] = append(out[path], scalingPoint{x: x, y: s.median})
	}
	for _, pts := range out {
		slices.SortFunc(pts, func(a, b scalingPoint) int { return cmp.Compare(a.x, b.x) })
	}
	return out
}
