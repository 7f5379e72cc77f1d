package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astrid-go/astrid/hoststate"
)

// testClock is a settable clock for FileLogs.now.
type testClock struct{ ms atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}

func (c *testClock) set(t time.Time)   { c.ms.Store(t.UnixMilli()) }
func (c *testClock) now() time.Time    { return time.UnixMilli(c.ms.Load()) }
func (f *FileLogs) openFiles() (n int) { f.mu.Lock(); n = len(f.files); f.mu.Unlock(); return n }
func mustTime(s string) time.Time      { t, err := time.Parse(time.RFC3339Nano, s); must(err); return t }
func must(err error) {
	if err != nil {
		panic(err)
	}
}
func readLog(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// testLogs builds a FileLogs without the background flusher unless every
// is > 0, closed at cleanup.
func testLogs(t testing.TB, prov func(string) bool, clock *testClock, maxOpen int, every time.Duration) (*FileLogs, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), LogsDir)
	f, err := newFileLogs(dir, prov, clock.now, maxOpen, every)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f, dir
}

var day1 = mustTime("2024-12-04T20:00:00.123Z") // 1733342400.123

func TestFileLogsFormat(t *testing.T) {
	tests := []struct {
		name  string
		at    time.Time
		level int32
		msg   string
		want  string
	}{
		{"info", day1, hoststate.LevelInfo, "hello", "1733342400.123 INFO [counter] hello"},
		{"trace", day1, hoststate.LevelTrace, "t", "1733342400.123 TRACE [counter] t"},
		{"debug", day1, hoststate.LevelDebug, "d", "1733342400.123 DEBUG [counter] d"},
		{"warn", day1, hoststate.LevelWarn, "w", "1733342400.123 WARN [counter] w"},
		{"error", day1, hoststate.LevelError, "e", "1733342400.123 ERROR [counter] e"},
		{"below trace clamps", day1, -3, "x", "1733342400.123 TRACE [counter] x"},
		{"above error clamps", day1, 9, "x", "1733342400.123 ERROR [counter] x"},
		{"newlines escaped", day1, hoststate.LevelInfo, "a\nb\r\nc\n", `1733342400.123 INFO [counter] a\nb\r\nc\n`},
		{"only a newline", day1, hoststate.LevelInfo, "\n", `1733342400.123 INFO [counter] \n`},
		{"empty", day1, hoststate.LevelInfo, "", "1733342400.123 INFO [counter] "},
		{"zero millis padded", mustTime("2024-12-04T20:00:00.007Z"), hoststate.LevelInfo, "m", "1733342400.007 INFO [counter] m"},
		{"whole second", mustTime("2024-12-04T20:00:01Z"), hoststate.LevelInfo, "s", "1733342401.000 INFO [counter] s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock(tt.at)
			f, dir := testLogs(t, nil, clock, DefaultMaxOpenLogFiles, 0)
			f.Write("alice", "counter", tt.level, tt.msg)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "alice", "counter", "2024-12-04.log")
			if got := f.Path("alice", "counter", tt.at); got != p {
				t.Errorf("Path = %s, want %s", got, p)
			}
			if got := readLog(t, p); got != tt.want+"\n" {
				t.Errorf("line = %q, want %q", got, tt.want+"\n")
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			// 0640 less whatever the umask removes: never more.
			if perm := fi.Mode().Perm(); perm&^0o640 != 0 || perm&0o600 != 0o600 {
				t.Errorf("file mode %v, want 0640", perm)
			}
			for _, d := range []string{dir, filepath.Dir(p), filepath.Dir(filepath.Dir(p))} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm&^0o750 != 0 || perm&0o700 != 0o700 {
					t.Errorf("%s: mode %v, want 0750", d, perm)
				}
			}
		})
	}
}

func TestFileLogsRouting(t *testing.T) {
	known := map[string]bool{"default": true, "alice": true}
	prov := func(p string) bool { return known[p] }
	tests := []struct {
		name               string
		prov               func(string) bool
		principal, capsule string
		wantPath           string // relative to the logs dir
		wantLine           string
		absent             string // a path that must not exist
	}{
		{"provisioned", prov, "alice", "counter", "alice/counter/2024-12-04.log",
			"1733342400.123 INFO [counter] hi", ""},
		{"unprovisioned", prov, "mallory", "counter", "@unprovisioned/counter/2024-12-04.log",
			"1733342400.123 INFO [counter] (principal=mallory) hi", "mallory"},
		{"nil provisioned means all", nil, "mallory", "counter", "mallory/counter/2024-12-04.log",
			"1733342400.123 INFO [counter] hi", "@unprovisioned"},
		{"invalid principal", prov, "../../etc", "counter", "@invalid/counter/2024-12-04.log",
			`1733342400.123 INFO [counter] (principal="../../etc") hi`, "etc"},
		{"empty principal", nil, "", "counter", "@invalid/counter/2024-12-04.log",
			`1733342400.123 INFO [counter] (principal="") hi`, ""},
		{"principal too long", nil, strings.Repeat("a", 65), "counter", "@invalid/counter/2024-12-04.log",
			`1733342400.123 INFO [counter] (principal="` + strings.Repeat("a", 65) + `") hi`, strings.Repeat("a", 65)},
		{"invalid capsule", prov, "alice", "../Counter\n", "alice/@invalid/2024-12-04.log",
			`1733342400.123 INFO [@invalid] (capsule="../Counter\n") hi`, "Counter"},
		{"both invalid and unprovisioned", prov, "bob", "a/b", "@unprovisioned/@invalid/2024-12-04.log",
			`1733342400.123 INFO [@invalid] (principal=bob) (capsule="a/b") hi`, "bob"},
		{"capsule id too long for a file name", nil, "alice", strings.Repeat("c", 256), "alice/@invalid/2024-12-04.log",
			`1733342400.123 INFO [@invalid] (capsule="` + strings.Repeat("c", 128) + `") hi`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, dir := testLogs(t, tt.prov, newTestClock(day1), DefaultMaxOpenLogFiles, 0)
			f.Write(tt.principal, tt.capsule, hoststate.LevelInfo, "hi")
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(dir, filepath.FromSlash(tt.wantPath))
			if got := f.Path(tt.principal, tt.capsule, day1); got != want {
				t.Errorf("Path = %s, want %s", got, want)
			}
			if got := readLog(t, want); got != tt.wantLine+"\n" {
				t.Errorf("line = %q, want %q", got, tt.wantLine+"\n")
			}
			if tt.absent != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.absent)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists (%v)", tt.absent, err)
				}
			}
			// Nothing escapes the logs dir.
			ents, _ := os.ReadDir(filepath.Dir(dir))
			if len(ents) != 1 {
				t.Errorf("entries beside the logs dir: %v", ents)
			}
		})
	}
}

func TestFileLogsLogPath(t *testing.T) {
	d := mustTime("2025-01-02T23:59:59Z")
	tests := []struct{ principal, capsule, want string }{
		{"alice", "counter", "alice/counter/2025-01-02.log"},
		{UnprovisionedLogs, "counter", "@unprovisioned/counter/2025-01-02.log"},
		{InvalidLogName, InvalidLogName, "@invalid/@invalid/2025-01-02.log"},
		{"..", "..", "@invalid/@invalid/2025-01-02.log"},
	}
	for _, tt := range tests {
		if got := LogPath("/l", tt.principal, tt.capsule, d.In(time.FixedZone("x", 5*3600))); got != "/l/"+tt.want {
			t.Errorf("LogPath(%q, %q) = %s, want /l/%s", tt.principal, tt.capsule, got, tt.want)
		}
	}
}

// TestFileLogsConcurrentWriters hammers two principals and two capsules
// from many goroutines, with room for every file and with one open file
// (every line may evict another file), and checks that every line landed
// whole, once, in order, in its own file.
func TestFileLogsConcurrentWriters(t *testing.T) {
	for _, maxOpen := range []int{DefaultMaxOpenLogFiles, 1} {
		t.Run(fmt.Sprintf("maxOpen=%d", maxOpen), func(t *testing.T) {
			f, dir := testLogs(t, nil, newTestClock(day1), maxOpen, time.Millisecond)
			principals, capsules := []string{"alice", "bob"}, []string{"counter", "echo"}
			const writers, lines = 4, 300
			var wg sync.WaitGroup
			for _, p := range principals {
				for _, c := range capsules {
					for w := range writers {
						wg.Go(func() {
							for i := range lines {
								lvl := int32(hoststate.LevelInfo)
								if i%50 == 0 {
									lvl = hoststate.LevelWarn // an immediate flush now and then
								}
								f.Write(p, c, lvl, fmt.Sprintf("%s %s w%d i%d\nsecond", p, c, w, i))
							}
						})
					}
				}
			}
			wg.Wait()
			if n := f.openFiles(); n > maxOpen {
				t.Errorf("%d open files, bound %d", n, maxOpen)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if f.Dropped() != 0 {
				t.Fatalf("dropped %d: %v", f.Dropped(), f.LastError())
			}
			for _, p := range principals {
				for _, c := range capsules {
					fh, err := os.Open(filepath.Join(dir, p, c, "2024-12-04.log"))
					if err != nil {
						t.Fatal(err)
					}
					next := make([]int, writers)
					sc := bufio.NewScanner(fh)
					n := 0
					for sc.Scan() {
						n++
						line := sc.Text()
						prefix := "1733342400.123 INFO [" + c + "] " + p + " " + c + " w"
						if !strings.HasPrefix(line, prefix) {
							prefix = strings.Replace(prefix, "INFO", "WARN", 1)
						}
						var w, i int
						rest, ok := strings.CutPrefix(line, prefix)
						if !ok {
							t.Fatalf("%s/%s: line %q is not %q...", p, c, line, prefix)
						}
						if _, err := fmt.Sscanf(rest, "%d i%d\\nsecond", &w, &i); err != nil || w < 0 || w >= writers {
							t.Fatalf("%s/%s: bad line %q: %v", p, c, line, err)
						}
						if i != next[w] {
							t.Fatalf("%s/%s: line %q out of order (want i%d for w%d)", p, c, line, next[w], w)
						}
						next[w]++
					}
					fh.Close()
					if n != writers*lines {
						t.Errorf("%s/%s: %d lines, want %d", p, c, n, writers*lines)
					}
				}
			}
		})
	}
}

func TestFileLogsDayRollover(t *testing.T) {
	clock := newTestClock(mustTime("2024-12-04T23:59:59.999Z"))
	f, dir := testLogs(t, nil, clock, DefaultMaxOpenLogFiles, 0)
	f.Write("alice", "counter", hoststate.LevelInfo, "last of the day")
	clock.set(mustTime("2024-12-05T00:00:00.000Z"))
	f.Write("alice", "counter", hoststate.LevelInfo, "first of the day")
	if n := f.openFiles(); n != 2 {
		t.Errorf("%d open files, want 2 (both days)", n)
	}
	// The sweep closes yesterday's file, which writes it out.
	f.sweep()
	if n := f.openFiles(); n != 1 {
		t.Errorf("%d open files after the sweep, want 1", n)
	}
	old := filepath.Join(dir, "alice", "counter", "2024-12-04.log")
	if got, want := readLog(t, old), "1733356799.999 INFO [counter] last of the day\n"; got != want {
		t.Errorf("old day = %q, want %q", got, want)
	}
	// A late line for yesterday reopens its file and appends.
	clock.set(mustTime("2024-12-04T23:59:59.999Z"))
	f.Write("alice", "counter", hoststate.LevelInfo, "late")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, old); !strings.HasSuffix(got, "] late\n") || strings.Count(got, "\n") != 2 {
		t.Errorf("old day after a late line = %q", got)
	}
	if got, want := readLog(t, filepath.Join(dir, "alice", "counter", "2024-12-05.log")), "1733356800.000 INFO [counter] first of the day\n"; got != want {
		t.Errorf("new day = %q, want %q", got, want)
	}
}

func TestFileLogsLRU(t *testing.T) {
	f, dir := testLogs(t, nil, newTestClock(day1), 2, 0)
	path := func(c string) string { return filepath.Join(dir, "alice", c, "2024-12-04.log") }
	f.Write("alice", "a", hoststate.LevelInfo, "a1")
	f.Write("alice", "b", hoststate.LevelInfo, "b1")
	f.Write("alice", "a", hoststate.LevelInfo, "a2") // a is now the most recent
	f.Write("alice", "c", hoststate.LevelInfo, "c1") // evicts b
	if n := f.openFiles(); n != 2 {
		t.Fatalf("%d open files, want 2", n)
	}
	if got := readLog(t, path("b")); !strings.HasSuffix(got, "[b] b1\n") {
		t.Errorf("evicted b not written out: %q", got)
	}
	if got := readLog(t, path("a")); got != "" {
		t.Errorf("a written out before eviction or close: %q", got)
	}
	f.Write("alice", "b", hoststate.LevelInfo, "b2") // reopens b, evicts a
	if n := f.openFiles(); n != 2 {
		t.Fatalf("%d open files, want 2", n)
	}
	if got := readLog(t, path("a")); strings.Count(got, "\n") != 2 {
		t.Errorf("evicted a: %q", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := readLog(t, path("b")), "1733342400.123 INFO [b] b1\n1733342400.123 INFO [b] b2\n"; got != want {
		t.Errorf("b after reopen = %q", got)
	}
}

func TestFileLogsFlushing(t *testing.T) {
	f, dir := testLogs(t, nil, newTestClock(day1), DefaultMaxOpenLogFiles, 0)
	p := filepath.Join(dir, "alice", "counter", "2024-12-04.log")
	f.Write("alice", "counter", hoststate.LevelInfo, "buffered")
	if got := readLog(t, p); got != "" {
		t.Fatalf("INFO line written out at once: %q", got)
	}
	f.Write("alice", "counter", hoststate.LevelWarn, "urgent")
	if got := readLog(t, p); strings.Count(got, "\n") != 2 {
		t.Fatalf("WARN did not write the buffer out: %q", got)
	}
	f.Write("alice", "counter", hoststate.LevelDebug, "at close")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, p); !strings.HasSuffix(got, "DEBUG [counter] at close\n") {
		t.Fatalf("Close did not flush: %q", got)
	}
	f.Write("alice", "counter", hoststate.LevelError, "after close")
	if f.Dropped() != 1 || !errors.Is(f.LastError(), ErrLogsClosed) {
		t.Errorf("after Close: dropped %d, last error %v", f.Dropped(), f.LastError())
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := readLog(t, p); strings.Contains(got, "after close") {
		t.Errorf("line written after Close: %q", got)
	}
}

func TestFileLogsPeriodicFlush(t *testing.T) {
	f, dir := testLogs(t, nil, newTestClock(day1), DefaultMaxOpenLogFiles, 10*time.Millisecond)
	p := filepath.Join(dir, "alice", "counter", "2024-12-04.log")
	f.Write("alice", "counter", hoststate.LevelInfo, "tick")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(p)
		if strings.HasSuffix(string(b), "INFO [counter] tick\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flusher never wrote the line out: %q", b)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a signal
	}
}

func TestFileLogsOpenError(t *testing.T) {
	f, dir := testLogs(t, nil, newTestClock(day1), DefaultMaxOpenLogFiles, 0)
	// A file where alice's directory should be.
	if err := os.WriteFile(filepath.Join(dir, "alice"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Write("alice", "counter", hoststate.LevelInfo, "lost")
	if f.Dropped() != 1 || f.LastError() == nil || !strings.HasPrefix(f.LastError().Error(), "supervisor: logs: ") {
		t.Fatalf("dropped %d, last error %v", f.Dropped(), f.LastError())
	}
	f.Write("bob", "counter", hoststate.LevelWarn, "kept")
	if f.Dropped() != 1 || f.openFiles() != 1 {
		t.Errorf("bob: dropped %d, %d open files", f.Dropped(), f.openFiles())
	}
	// Once the obstacle is gone, alice's lines are written again.
	if err := os.Remove(filepath.Join(dir, "alice")); err != nil {
		t.Fatal(err)
	}
	f.Write("alice", "counter", hoststate.LevelWarn, "back")
	if got := readLog(t, f.Path("alice", "counter", day1)); !strings.HasSuffix(got, "WARN [counter] back\n") {
		t.Errorf("alice after recovery: %q", got)
	}
}

// BenchmarkFileLogsWrite measures one guest log line into a buffered file:
// one capsule from one goroutine, and four files from parallel goroutines.
func BenchmarkFileLogsWrite(b *testing.B) {
	msg := "handled request 42: ok in 1.2ms for topic counter.v1.increment"
	known := map[string]bool{"alice": true, "bob": true}
	prov := func(p string) bool { return known[p] }
	b.Run("serial", func(b *testing.B) {
		f, err := NewFileLogs(b.TempDir(), prov)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.ReportAllocs()
		for b.Loop() {
			f.Write("alice", "counter", hoststate.LevelInfo, msg)
		}
	})
	b.Run("parallel-4files", func(b *testing.B) {
		f, err := NewFileLogs(b.TempDir(), prov)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := n.Add(1)
			p, c := []string{"alice", "bob"}[i%2], []string{"counter", "echo"}[i/2%2]
			for pb.Next() {
				f.Write(p, c, hoststate.LevelInfo, msg)
			}
		})
	})
}
