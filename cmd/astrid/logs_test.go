package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/supervisor"
)

// notifyBuffer is a goroutine-safe output that signals every write.
type notifyBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{wrote: make(chan struct{}, 1)} }

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case n.wrote <- struct{}{}:
	default:
	}
	return n.b.Write(p)
}

func (n *notifyBuffer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}

// waitFor waits until the output contains want.
func (n *notifyBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for !strings.Contains(n.String(), want) {
		select {
		case <-n.wrote:
		case <-timeout.C:
			t.Fatalf("output never contained %q:\n%s", want, n.String())
		}
	}
}

// writeLogs writes lines through the node's FileLogs (real clock) and
// returns the data dir; it skips if the UTC day changed meanwhile.
func writeLogs(t *testing.T, lines map[string][]string) string {
	t.Helper()
	data := t.TempDir()
	day := utcDay(time.Now())
	f, err := supervisor.NewFileLogs(filepath.Join(data, supervisor.LogsDir), func(p string) bool { return p != "mallory" })
	if err != nil {
		t.Fatal(err)
	}
	for principal, msgs := range lines {
		for _, m := range msgs {
			f.Write(principal, "counter", hoststate.LevelInfo, m)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if !utcDay(time.Now()).Equal(day) {
		t.Skip("the UTC day changed while writing")
	}
	return data
}

func TestCLILogsPrint(t *testing.T) {
	data := writeLogs(t, map[string][]string{
		"alice":   {"a1", "a2", "a3", "multi\nline"},
		"default": {"d1"},
		"mallory": {"m1"},
	})
	today := utcDay(time.Now()).Format(time.DateOnly)
	tests := []struct {
		name string
		args []string
		want []string // the messages, in order
	}{
		{"all", []string{"--principal", "alice", "counter"}, []string{"a1", "a2", "a3", `multi\nline`}},
		{"--lines", []string{"--principal", "alice", "--lines", "2", "counter"}, []string{"a3", `multi\nline`}},
		{"-n more than there are", []string{"--principal", "alice", "-n", "50", "counter"}, []string{"a1", "a2", "a3", `multi\nline`}},
		{"--lines 0", []string{"--principal", "alice", "--lines", "0", "counter"}, nil},
		{"default principal", []string{"counter"}, []string{"d1"}},
		{"--date", []string{"--date", today, "counter"}, []string{"d1"}},
		{"unprovisioned", []string{"--principal", "@unprovisioned", "counter"}, []string{"(principal=mallory) m1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"logs", "--data", data}, tt.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				got = nil
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tt.want), out)
			}
			for i, line := range got {
				if want := " INFO [counter] " + tt.want[i]; !strings.HasSuffix(line, want) {
					t.Errorf("line %d = %q, want ...%q", i, line, want)
				}
			}
		})
	}
}

func TestCLILogsErrors(t *testing.T) {
	data := writeLogs(t, map[string][]string{"alice": {"a1"}, "default": {"d1"}})
	logs := filepath.Join(data, supervisor.LogsDir)
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"principal without logs", []string{"--principal", "carol", "counter"}, ExitFailure,
			"no logs for capsule counter and principal carol under " + logs + "; principals with logs for it: alice, default"},
		{"capsule without logs", []string{"echo"}, ExitFailure, "no logs for capsule echo under " + logs},
		{"no data dir", []string{"--data", filepath.Join(data, "nope"), "counter"}, ExitFailure, "no logs for capsule counter under"},
		{"day without a log", []string{"--date", "2001-02-03", "counter"}, ExitFailure,
			"no log for capsule counter, principal default on 2001-02-03; days with logs: " + utcDay(time.Now()).Format(time.DateOnly)},
		{"bad date", []string{"--date", "03/02/2001", "counter"}, ExitUsage, `--date "03/02/2001": want YYYY-MM-DD`},
		{"bad principal", []string{"--principal", "../x", "counter"}, ExitUsage, `--principal "../x"`},
		{"bad capsule", []string{"../Counter"}, ExitUsage, "invalid capsule id"},
		{"negative lines", []string{"--lines", "-1", "counter"}, ExitUsage, "--lines must be 0 or more"},
		{"follow a past day", []string{"--follow", "--date", "2001-02-03", "counter"}, ExitUsage, "--follow follows today's log"},
		{"no capsule", nil, ExitUsage, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"logs", "--data", data}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.code, tt.wantErr)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
}

// TestCLILogsFollow runs astrid logs -f against a live FileLogs: the line
// written after the command started is printed once the node's flusher
// writes it out, and cancelling the context ends the command with exit 0.
func TestCLILogsFollow(t *testing.T) {
	data := t.TempDir()
	f, err := supervisor.NewFileLogs(filepath.Join(data, supervisor.LogsDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write("alice", "counter", hoststate.LevelWarn, "before") // WARN: written out at once
	f.Write("alice", "counter", hoststate.LevelWarn, "old")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := newNotifyBuffer(), newNotifyBuffer()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"logs", "--data", data, "--principal", "alice", "--follow", "--lines", "1", "counter"},
			strings.NewReader(""), out, errb)
	}()
	out.waitFor(t, "WARN [counter] old\n")
	f.Write("alice", "counter", hoststate.LevelInfo, "new") // INFO: written out by the flusher
	out.waitFor(t, "INFO [counter] new\n")
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("astrid logs --follow did not stop on cancel")
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "] old") || !strings.HasSuffix(lines[1], "] new") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestLogsFollowNextDay follows a log across midnight UTC with a fake
// clock: the rest of the old day's file, then the new day's file.
func TestLogsFollowNextDay(t *testing.T) {
	dir := t.TempDir()
	day1, day2 := time.Date(2024, 12, 4, 0, 0, 0, 0, time.UTC), time.Date(2024, 12, 5, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(day1.Add(23*time.Hour + 59*time.Minute).UnixMilli())
	path1 := supervisor.LogPath(dir, "alice", "counter", day1)
	path2 := supervisor.LogPath(dir, "alice", "counter", day2)
	if err := os.MkdirAll(filepath.Dir(path1), 0o750); err != nil {
		t.Fatal(err)
	}
	appendLine := func(p, s string) {
		t.Helper()
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if _, err := fh.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(path1, "d1\n")

	ctx, cancel := context.WithCancel(context.Background())
	out := newNotifyBuffer()
	done := make(chan error, 1)
	go func() {
		done <- showLogs(ctx, out, logsOptions{dir: dir, principal: "alice", capsule: "counter", day: day1,
			lines: 10, follow: true, now: func() time.Time { return time.UnixMilli(clock.Load()) }, interval: 5 * time.Millisecond})
	}()
	out.waitFor(t, "d1\n")
	appendLine(path1, "d1-late\n")
	out.waitFor(t, "d1-late\n")
	appendLine(path1, "d1-last")  // no newline yet: printed whole when the day ends
	clock.Store(day2.UnixMilli()) // midnight
	appendLine(path2, "d2\n")     // the node's first line of the new day
	out.waitFor(t, "d2\n")
	appendLine(path2, "d2-more\n")
	out.waitFor(t, "d2-more\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "d1\nd1-late\nd1-last\nd2\nd2-more\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestLogsTailer(t *testing.T) {
	big := strings.Repeat("x", tailChunk+10)
	tests := []struct {
		name    string
		content string
		n       int
		want    string
	}{
		{"empty", "", 3, ""},
		{"fewer lines than n", "a\nb\n", 3, "a\nb\n"},
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"zero", "a\nb\n", 0, ""},
		{"partial last line left for poll", "a\nb\nc", 1, "b\n"},
		{"only a partial line", "abc", 5, ""},
		{"lines across chunks", "first\n" + big + "\nlast\n", 2, big + "\nlast\n"},
		{"all across chunks", "first\n" + big + "\nlast\n", 9, "first\n" + big + "\nlast\n"},
		{"empty lines", "\n\n\n", 2, "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.log")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			tl := tailer{path: p}
			got, err := tl.last(tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("last(%d) = %q, want %q", tt.n, shorten(string(got)), shorten(tt.want))
			}
			// poll continues right after the last complete line.
			if want := int64(strings.LastIndexByte(tt.content, '\n') + 1); tl.off != want {
				t.Errorf("off = %d, want %d", tl.off, want)
			}
		})
	}
}

func TestLogsTailerPoll(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	tl := tailer{path: p}
	var out bytes.Buffer
	step := func(appendS, want string) {
		t.Helper()
		if appendS != "" {
			fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			fh.WriteString(appendS)
			fh.Close()
		}
		out.Reset()
		if err := tl.poll(&out); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("after appending %q: printed %q, want %q", appendS, out.String(), want)
		}
	}
	step("", "")                                                  // no file yet
	step("a\nhal", "a\n")                                         // a partial line is held back
	step("f\n", "half\n")                                         // and completed
	step("b\nc\n", "b\nc\n")                                      // several at once
	if err := os.WriteFile(p, []byte("z\n"), 0o600); err != nil { // replaced by a shorter file
		t.Fatal(err)
	}
	step("", "z\n")
}

func shorten(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
	}
	return s
}
