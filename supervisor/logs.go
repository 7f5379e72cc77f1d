package supervisor

import (
	"bufio"
	clist "container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/manifests"
)

// LogsDir is the directory under the node's data directory that holds the
// guest log files (the dir given to NewFileLogs).
const LogsDir = "logs"

// Directory names that stand in for a principal or capsule id in the log
// layout. Neither can collide with a real id ('@' is not allowed in
// either).
const (
	// UnprovisionedLogs collects the lines of valid principals that are not
	// provisioned, each prefixed with "(principal=<id>) ".
	UnprovisionedLogs = "@unprovisioned"
	// InvalidLogName replaces an invalid principal or capsule id; the raw
	// id is quoted in the line's prefix.
	InvalidLogName = "@invalid"
)

// DefaultMaxOpenLogFiles bounds the log files a FileLogs keeps open; the
// least recently written one is flushed and closed beyond it.
const DefaultMaxOpenLogFiles = 128

// LogFlushInterval is how often buffered log lines are written out. A
// WARN or ERROR line is written out at once.
const LogFlushInterval = 200 * time.Millisecond

// ErrLogsClosed is recorded (see FileLogs.LastError) for lines written
// after Close.
var ErrLogsClosed = errors.New("supervisor: logs: closed")

const (
	msPerDay         = 24 * 60 * 60 * 1000
	logBufferSize    = 8 << 10
	maxCapsuleDirLen = 255 // longest file-name component
	maxQuotedIDBytes = 128 // of an invalid id, in the line prefix
)

var levelNames = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

// FileLogs writes guest log lines to one file per principal, capsule and
// UTC day: <dir>/<principal>/<capsule>/<YYYY-MM-DD>.log (files 0640,
// directories 0750), one line per call in Astrid's format
//
//	<epoch.ms> LEVEL [capsule] message
//
// with every "\n" and "\r" in the message written as the two characters
// `\n` and `\r` (backslashes are not escaped, so this is for reading, not
// for reversing). It implements hoststate.LogSink.
//
// Routing: an invalid principal (bus.ValidPrincipal) goes to the
// InvalidLogName directory and an invalid capsule id
// (manifests.ValidateCapsuleID, at most 255 bytes) to an InvalidLogName
// capsule directory, the raw id quoted in the line; a valid principal for
// which provisioned returns false goes to UnprovisionedLogs with
// "(principal=<id>) " before the message. So no directory is ever named
// after an unprovisioned or invented principal.
//
// Durability: lines are buffered per file (8 KiB) and written out every
// LogFlushInterval by a background goroutine, at once for WARN and ERROR
// lines, when the buffer fills, when a file is closed by the LRU bound or
// the day rolls over, and by Close. A kill -9 loses at most the INFO-and-
// below lines of the last LogFlushInterval; nothing is fsynced, so a
// machine crash can lose what the kernel had not written yet. Lines are
// kept whole in one write(2) when they fit the buffer.
//
// # Concurrency
//
// Goroutine-safe. One mutex guards the table of open files and its LRU
// order; each open file has its own mutex around its buffer, so capsules
// writing to different files do not wait for each other's writes. Lock
// order: the table, then a file. Opening and closing a file (LRU
// eviction, day rollover) happen under the table's mutex, so a file is
// never open twice and lines for one file keep their order. provisioned is called on every line
// without a lock held: it must be cheap and goroutine-safe.
type FileLogs struct {
	dir         string
	provisioned func(string) bool
	now         func() time.Time
	maxOpen     int

	mu     sync.Mutex
	files  map[logKey]*logFile
	lru    clist.List // of *logFile, most recently used first
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup

	dropped atomic.Uint64
	lastErr atomic.Pointer[error]
}

var _ hoststate.LogSink = (*FileLogs)(nil)

// logKey names one log file: the principal and capsule directories (after
// routing) and the UTC day number since the epoch.
type logKey struct {
	principal, capsule string
	day                int64
}

// logFile is one open log file. mu guards w, closed and failed.
type logFile struct {
	key  logKey
	elem *clist.Element // in FileLogs.lru; guarded by FileLogs.mu

	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	closed bool
}

// NewFileLogs creates dir (0750) and returns a FileLogs writing under it.
// provisioned reports whether a valid principal has its own log
// directory; nil means every valid principal does. Call Close to flush
// and stop the background flusher.
func NewFileLogs(dir string, provisioned func(principal string) bool) (*FileLogs, error) {
	return newFileLogs(dir, provisioned, time.Now, DefaultMaxOpenLogFiles, LogFlushInterval)
}

// newFileLogs is NewFileLogs with the clock, the open-file bound and the
// flush interval (0: no background flusher) as test seams.
func newFileLogs(dir string, provisioned func(string) bool, now func() time.Time, maxOpen int, flushEvery time.Duration) (*FileLogs, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("supervisor: logs: %w", err)
	}
	f := &FileLogs{
		dir:         dir,
		provisioned: provisioned,
		now:         now,
		maxOpen:     max(maxOpen, 1),
		files:       make(map[logKey]*logFile),
		stop:        make(chan struct{}),
	}
	if flushEvery > 0 {
		f.wg.Add(1)
		go f.flusher(flushEvery)
	}
	return f, nil
}

// principalMode says how a line's principal was routed.
type principalMode uint8

const (
	principalOK principalMode = iota
	principalUnprovisioned
	principalInvalid
)

// route maps a principal and capsule to their directory names.
func (f *FileLogs) route(principal, capsule string) (pdir, cdir string, mode principalMode, capsuleOK bool) {
	pdir, cdir = principal, capsule
	switch {
	case !bus.ValidPrincipal(principal):
		pdir, mode = InvalidLogName, principalInvalid
	case f.provisioned != nil && !f.provisioned(principal):
		pdir, mode = UnprovisionedLogs, principalUnprovisioned
	}
	capsuleOK = validCapsuleDir(capsule)
	if !capsuleOK {
		cdir = InvalidLogName
	}
	return pdir, cdir, mode, capsuleOK
}

func validCapsuleDir(capsule string) bool {
	return len(capsule) <= maxCapsuleDirLen && manifests.ValidateCapsuleID(capsule) == nil
}

// Write implements hoststate.LogSink: it appends one line for principal's
// view of capsule. Errors are not returned (the guest's log call cannot
// fail on the node's disk); they are counted by Dropped and kept by
// LastError.
func (f *FileLogs) Write(principal, capsule string, level int32, msg string) {
	ms := f.now().UnixMilli()
	pdir, cdir, mode, capsuleOK := f.route(principal, capsule)
	e, err := f.acquire(logKey{principal: pdir, capsule: cdir, day: floorDiv(ms, msPerDay)})
	if err != nil {
		f.fail(err)
		return
	}
	// e.mu is held.
	w := e.w
	if need := 48 + len(cdir) + len(msg); w.Available() < need && w.Buffered() > 0 {
		// Keep the line in one write(2) when it fits the buffer.
		_ = w.Flush() // a failure is sticky and seen below
	}
	b := w.AvailableBuffer()
	b = appendStamp(b, ms)
	b = append(b, ' ')
	b = append(b, levelNames[min(max(level, hoststate.LevelTrace), hoststate.LevelError)]...)
	b = append(b, " ["...)
	b = append(b, cdir...)
	b = append(b, "] "...)
	_, _ = w.Write(b)
	switch mode {
	case principalUnprovisioned:
		_, _ = w.WriteString("(principal=")
		_, _ = w.WriteString(principal)
		_, _ = w.WriteString(") ")
	case principalInvalid:
		_, _ = w.WriteString("(principal=")
		_, _ = w.WriteString(quoteID(principal))
		_, _ = w.WriteString(") ")
	}
	if !capsuleOK {
		_, _ = w.WriteString("(capsule=")
		_, _ = w.WriteString(quoteID(capsule))
		_, _ = w.WriteString(") ")
	}
	writeEscaped(w, msg)
	err = w.WriteByte('\n')
	if err == nil && level >= hoststate.LevelWarn {
		err = w.Flush()
	}
	e.mu.Unlock()
	if err != nil {
		// The buffer's error is sticky: drop this file so the next line
		// reopens it (the disk may have recovered).
		f.fail(fmt.Errorf("supervisor: logs: %s: %w", f.pathOf(e.key), err))
		f.remove(e)
	}
}

// acquire returns the open file for k with its mutex held, opening it (and
// closing the least recently used one beyond maxOpen) when needed.
func (f *FileLogs) acquire(k logKey) (*logFile, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, ErrLogsClosed
		}
		e := f.files[k]
		if e == nil {
			var err error
			if e, err = f.open(k); err != nil {
				f.mu.Unlock()
				return nil, err
			}
			f.files[k] = e
			e.elem = f.lru.PushFront(e)
			if f.lru.Len() > f.maxOpen {
				f.evict(f.lru.Back().Value.(*logFile))
			}
		} else {
			f.lru.MoveToFront(e.elem)
		}
		f.mu.Unlock()
		e.mu.Lock()
		if !e.closed {
			return e, nil
		}
		// Evicted or swept between the lookup and the lock: look again.
		e.mu.Unlock()
	}
}

// open opens k's file for appending, creating its directories. f.mu is
// held.
func (f *FileLogs) open(k logKey) (*logFile, error) {
	p := f.pathOf(k)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, fmt.Errorf("supervisor: logs: %w", err)
	}
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("supervisor: logs: %w", err)
	}
	return &logFile{key: k, f: fh, w: bufio.NewWriterSize(fh, logBufferSize)}, nil
}

// unlink takes e out of the table. f.mu is held.
func (f *FileLogs) unlink(e *logFile) {
	if f.files[e.key] == e {
		delete(f.files, e.key)
	}
	if e.elem != nil {
		f.lru.Remove(e.elem)
		e.elem = nil
	}
}

// evict takes e out of the table and closes it. f.mu is held, so that no
// second file for e's key is opened (and written out) before e's buffer
// is: that would reorder lines.
func (f *FileLogs) evict(e *logFile) {
	f.unlink(e)
	if err := f.closeFile(e); err != nil {
		f.fail(err)
	}
}

// remove takes e, whose writer failed, out of the table (if it is still
// there) and closes it; the failure is already recorded.
func (f *FileLogs) remove(e *logFile) {
	f.mu.Lock()
	f.unlink(e)
	_ = f.closeFile(e)
	f.mu.Unlock()
}

// closeFile flushes and closes e once; e is no longer in the table.
func (*FileLogs) closeFile(e *logFile) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := e.w.Flush()
	if cerr := e.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("supervisor: logs: %s: %w", e.f.Name(), err)
	}
	return nil
}

func (f *FileLogs) fail(err error) {
	f.dropped.Add(1)
	f.lastErr.Store(&err)
}

// flusher writes out buffered lines every interval until Close.
func (f *FileLogs) flusher(every time.Duration) {
	defer f.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.sweep()
		}
	}
}

// sweep writes out every buffered line and closes the files of past days.
func (f *FileLogs) sweep() {
	today := floorDiv(f.now().UnixMilli(), msPerDay)
	f.mu.Lock()
	open := make([]*logFile, 0, f.lru.Len())
	for el := f.lru.Front(); el != nil; {
		e := el.Value.(*logFile)
		el = el.Next()
		if e.key.day < today {
			f.evict(e)
		} else {
			open = append(open, e)
		}
	}
	f.mu.Unlock()
	for _, e := range open {
		e.mu.Lock()
		var err error
		if !e.closed && e.w.Buffered() > 0 {
			err = e.w.Flush()
		}
		e.mu.Unlock()
		if err != nil {
			f.fail(fmt.Errorf("supervisor: logs: %s: %w", f.pathOf(e.key), err))
			f.remove(e)
		}
	}
}

// Close stops the background flusher, writes out every buffered line and
// closes every file. Lines written after Close are dropped
// (ErrLogsClosed). Closing twice is a no-op.
func (f *FileLogs) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	open := make([]*logFile, 0, f.lru.Len())
	for el := f.lru.Front(); el != nil; el = el.Next() {
		open = append(open, el.Value.(*logFile))
	}
	for _, e := range open {
		f.unlink(e)
	}
	f.mu.Unlock()
	close(f.stop)
	f.wg.Wait()
	var errs []error
	for _, e := range open {
		if err := f.closeFile(e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Dropped returns how many lines (at least) could not be written: lines
// after Close, lines whose file could not be opened, and one per failed
// write or flush (a failed flush can lose every line it held).
func (f *FileLogs) Dropped() uint64 { return f.dropped.Load() }

// LastError returns the latest write, flush or open error, or nil.
func (f *FileLogs) LastError() error {
	if p := f.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Path returns the file that principal's lines for capsule written on
// day (UTC) go to, after routing: an unprovisioned principal's lines go
// to the UnprovisionedLogs file of that capsule.
func (f *FileLogs) Path(principal, capsule string, day time.Time) string {
	pdir, cdir, _, _ := f.route(principal, capsule)
	return LogPath(f.dir, pdir, cdir, day)
}

func (f *FileLogs) pathOf(k logKey) string {
	return filepath.Join(f.dir, k.principal, k.capsule, time.UnixMilli(k.day*msPerDay).UTC().Format(time.DateOnly)+".log")
}

// LogPath returns <dir>/<principal>/<capsule>/<YYYY-MM-DD>.log for day's
// UTC date, without asking whether principal is provisioned. principal may
// also be UnprovisionedLogs or InvalidLogName, and capsule InvalidLogName;
// any other invalid id is replaced by InvalidLogName, so the result is
// always under dir.
func LogPath(dir, principal, capsule string, day time.Time) string {
	if principal != UnprovisionedLogs && !bus.ValidPrincipal(principal) {
		principal = InvalidLogName
	}
	if !validCapsuleDir(capsule) {
		capsule = InvalidLogName
	}
	return filepath.Join(dir, principal, capsule, day.UTC().Format(time.DateOnly)+".log")
}

// appendStamp appends ms since the epoch as seconds with three decimals.
func appendStamp(b []byte, ms int64) []byte {
	sec, frac := floorDiv(ms, 1000), ms-floorDiv(ms, 1000)*1000
	b = strconv.AppendInt(b, sec, 10)
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// writeEscaped writes msg with "\n" and "\r" as two-character escapes.
func writeEscaped(w *bufio.Writer, msg string) {
	for {
		i := strings.IndexAny(msg, "\n\r")
		if i < 0 {
			_, _ = w.WriteString(msg)
			return
		}
		_, _ = w.WriteString(msg[:i])
		if msg[i] == '\n' {
			_, _ = w.WriteString(`\n`)
		} else {
			_, _ = w.WriteString(`\r`)
		}
		msg = msg[i+1:]
	}
}

// quoteID quotes an invalid id for a line prefix, cut to a sane length.
func quoteID(id string) string {
	if len(id) > maxQuotedIDBytes {
		id = id[:maxQuotedIDBytes]
	}
	return strconv.Quote(id)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
