package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/manifests"
	"github.com/astrid-go/astrid/supervisor"
)

// logsPollInterval is how often --follow looks for new lines.
const logsPollInterval = 200 * time.Millisecond

func logsCmd(g *globals) *cobra.Command {
	var data, principal, date string
	var follow bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs CAPSULE",
		Short: "Print a capsule's log for one principal (and follow it with -f)",
		Long: `logs prints the last lines of a capsule's log file for one principal:
<data>/logs/<principal>/<capsule>/<YYYY-MM-DD>.log, one file per UTC day, each
line "<epoch.ms> LEVEL [capsule] message". It reads the files directly, so the
node need not be running.

Lines of principals that are not provisioned are kept together under the
principal "@unprovisioned", each message prefixed with "(principal=<id>)";
lines with an invalid principal or capsule id under "@invalid".

With --follow it keeps printing lines as they are appended, into the next
day's file after midnight UTC, until interrupted.`,
		Example: `  astrid logs counter
  astrid logs --principal alice --lines 20 --follow counter
  astrid logs --date 2024-12-04 counter
  astrid logs --principal @unprovisioned counter`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := logsOptions{
				dir:       filepath.Join(data, supervisor.LogsDir),
				principal: principal,
				capsule:   args[0],
				lines:     lines,
				follow:    follow,
				now:       time.Now,
				interval:  logsPollInterval,
			}
			if err := o.validate(date); err != nil {
				return usageError{err}
			}
			if err := showLogs(cmd.Context(), cmd.OutOrStdout(), o); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "astrid-data", "node data directory")
	f.StringVar(&principal, "principal", "default", "principal whose log to read (or @unprovisioned, @invalid)")
	f.StringVar(&date, "date", "", "UTC day to read, YYYY-MM-DD (default today)")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	f.IntVarP(&lines, "lines", "n", 100, "print the last N lines (0: none)")
	return cmd
}

// logsOptions is one astrid logs invocation; now and interval are test
// seams.
type logsOptions struct {
	dir, principal, capsule string
	day                     time.Time // UTC midnight of the day to read
	lines                   int
	follow                  bool
	now                     func() time.Time
	interval                time.Duration
}

func (o *logsOptions) validate(date string) error {
	if o.principal != supervisor.UnprovisionedLogs && o.principal != supervisor.InvalidLogName && !bus.ValidPrincipal(o.principal) {
		return fmt.Errorf("--principal %q: 1 to 64 of [a-zA-Z0-9_-]", o.principal)
	}
	if o.capsule != supervisor.InvalidLogName {
		if err := manifests.ValidateCapsuleID(o.capsule); err != nil {
			return err
		}
	}
	if o.lines < 0 {
		return fmt.Errorf("--lines must be 0 or more, not %d", o.lines)
	}
	today := utcDay(o.now())
	o.day = today
	if date != "" {
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return fmt.Errorf("--date %q: want YYYY-MM-DD", date)
		}
		o.day = d
	}
	if o.follow && !o.day.Equal(today) {
		return fmt.Errorf("--follow follows today's log (%s UTC); drop --date %s", today.Format(time.DateOnly), date)
	}
	return nil
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// showLogs prints the last o.lines complete lines of o.day's file and,
// with o.follow, every line appended after them until ctx is done.
func showLogs(ctx context.Context, out io.Writer, o logsOptions) error {
	capDir := filepath.Join(o.dir, o.principal, o.capsule)
	if fi, err := os.Stat(capDir); err != nil || !fi.IsDir() {
		return noLogsError(o)
	}
	path := supervisor.LogPath(o.dir, o.principal, o.capsule, o.day)
	t := tailer{path: path}
	data, err := t.last(o.lines)
	switch {
	case errors.Is(err, os.ErrNotExist) && o.follow:
		// Nothing logged today yet: wait for the file.
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no log for capsule %s, principal %s on %s; days with logs: %s",
			o.capsule, o.principal, o.day.Format(time.DateOnly), strings.Join(logDays(capDir), ", "))
	case err != nil:
		return err
	}
	if _, err := out.Write(data); err != nil {
		return err
	}
	if !o.follow {
		return nil
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// Read the clock before polling: whatever the old day's file got
		// before midnight is then drained by this poll, not skipped.
		today := utcDay(o.now())
		if err := t.poll(out); err != nil {
			return err
		}
		if today.After(o.day) {
			// Midnight UTC: drain the old day (poll above), then follow
			// the new day's file from its start.
			if len(t.partial) > 0 {
				if _, err := out.Write(append(t.partial, '\n')); err != nil {
					return err
				}
			}
			o.day = today
			t = tailer{path: supervisor.LogPath(o.dir, o.principal, o.capsule, today)}
			if err := t.poll(out); err != nil {
				return err
			}
		}
	}
}

// noLogsError says that principal has no log for the capsule and which
// principals have one.
func noLogsError(o logsOptions) error {
	var have []string
	ents, _ := os.ReadDir(o.dir)
	for _, e := range ents {
		if fi, err := os.Stat(filepath.Join(o.dir, e.Name(), o.capsule)); e.IsDir() && err == nil && fi.IsDir() {
			have = append(have, e.Name())
		}
	}
	if len(have) == 0 {
		return fmt.Errorf("no logs for capsule %s under %s", o.capsule, o.dir)
	}
	return fmt.Errorf("no logs for capsule %s and principal %s under %s; principals with logs for it: %s",
		o.capsule, o.principal, o.dir, strings.Join(have, ", "))
}

// logDays lists the days that have a log file in dir, oldest first.
func logDays(dir string) []string {
	var days []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if d, ok := strings.CutSuffix(e.Name(), ".log"); ok && !e.IsDir() {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	if len(days) == 0 {
		return []string{"none"}
	}
	return days
}

// tailer reads complete lines from a growing log file. off is where the
// next unread byte is; partial holds a line read without its newline yet
// (the node writes lines buffered, so a read can end mid-line).
type tailer struct {
	path    string
	off     int64
	partial []byte
}

// tailChunk is how much last reads backwards at a time.
const tailChunk = 64 << 10

// last returns the last n complete lines of the file and leaves off just
// after them, so that poll continues from there.
func (t *tailer) last(n int) ([]byte, error) {
	fh, err := os.Open(t.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	pos := fi.Size()
	var buf []byte
	for pos > 0 && bytes.Count(buf, []byte{'\n'}) <= n {
		c := min(tailChunk, pos)
		pos -= c
		chunk := make([]byte, c, int(c)+len(buf))
		if _, err := fh.ReadAt(chunk, pos); err != nil {
			return nil, err
		}
		buf = append(chunk, buf...)
	}
	complete := buf[:bytes.LastIndexByte(buf, '\n')+1]
	start := len(complete)
	for i := 0; i < n && start > 0; i++ {
		start = bytes.LastIndexByte(complete[:start-1], '\n') + 1
	}
	t.off = pos + int64(len(complete))
	return complete[start:], nil
}

// poll prints the complete lines appended since the last call. A missing
// file is not an error (it may not have been created yet); a file that
// shrank is read again from its start.
func (t *tailer) poll(out io.Writer) error {
	fh, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < t.off {
		t.off, t.partial = 0, nil
	}
	for t.off < fi.Size() {
		chunk := make([]byte, min(tailChunk, fi.Size()-t.off))
		n, err := fh.ReadAt(chunk, t.off)
		if n == 0 && err != nil {
			return err
		}
		t.off += int64(n)
		data := append(t.partial, chunk[:n]...)
		end := bytes.LastIndexByte(data, '\n') + 1
		if _, err := out.Write(data[:end]); err != nil {
			return err
		}
		t.partial = append([]byte(nil), data[end:]...)
	}
	return nil
}
