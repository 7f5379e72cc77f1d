package bench

import (
	"crypto/sha256"
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkCalibSHA256_4KiB is the machine's state when the suite ran: a
// CPU-bound figure that perf-baseline.md measured at 2.35 µs on an idle
// 2-core machine, and the 1-minute load average (other work on a shared
// machine shows up here first). It is not a row of the table.
func BenchmarkCalibSHA256_4KiB(b *testing.B) {
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sha256.Sum256(buf)
	}
	if l, ok := loadAvg(); ok {
		b.ReportMetric(l, "loadavg1")
	}
}

// loadAvg reads the 1-minute load average from /proc/loadavg.
func loadAvg() (float64, bool) {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}
