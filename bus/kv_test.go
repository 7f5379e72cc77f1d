package bus_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
)

func openKV(t *testing.T, c *bus.Conn) *bus.KV {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := bus.OpenKV(ctx, c, bus.KVConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustGet(t *testing.T, kv *bus.KV, ns, key string) string {
	t.Helper()
	v, _, err := kv.Get(testCtx(t), ns, key)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", ns, key, err)
	}
	return string(v)
}

func mustPut(t *testing.T, kv *bus.KV, ns, key, val string) uint64 {
	t.Helper()
	rev, err := kv.Put(testCtx(t), ns, key, []byte(val))
	if err != nil {
		t.Fatalf("Put(%q, %q): %v", ns, key, err)
	}
	return rev
}

func TestKVIsolation(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	namespaces := []string{
		"alice:capsule:counter",
		"alice:capsule:notes",
		"bob:capsule:counter",
		"bob:capsule:notes",
		"alice:capsule:counter:extra", // one more part must not leak into its parent
		"alice:capsule:counter.x",     // a dot in a part must not split it
	}
	for _, ns := range namespaces {
		mustPut(t, kv, ns, "count", ns)
		mustPut(t, kv, ns, "only-"+strings.NewReplacer(":", "_", ".", "_").Replace(ns), "1")
	}
	for _, ns := range namespaces {
		if got := mustGet(t, kv, ns, "count"); got != ns {
			t.Errorf("%s: count = %q", ns, got)
		}
		keys, err := kv.Keys(ctx, ns, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"count", "only-" + strings.NewReplacer(":", "_", ".", "_").Replace(ns)}
		if !slices.Equal(keys, want) {
			t.Errorf("%s: keys = %v, want %v", ns, keys, want)
		}
	}
	// Deleting and clearing in one namespace touches no other.
	if err := kv.Delete(ctx, "alice:capsule:counter", "count"); err != nil {
		t.Fatal(err)
	}
	if n, err := kv.ClearPrefix(ctx, "bob:capsule:counter", ""); err != nil || n != 2 {
		t.Fatalf("ClearPrefix = %d, %v", n, err)
	}
	if _, _, err := kv.Get(ctx, "alice:capsule:counter", "count"); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Errorf("deleted key: err = %v", err)
	}
	for _, ns := range []string{"alice:capsule:notes", "bob:capsule:notes", "alice:capsule:counter:extra", "alice:capsule:counter.x"} {
		if got := mustGet(t, kv, ns, "count"); got != ns {
			t.Errorf("%s after delete/clear elsewhere: count = %q", ns, got)
		}
	}
	// The documented layout.
	if _, err := kv.Put(ctx, "alice:capsule:notes", "a.b c", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Bucket().Get(ctx, "alice.capsule.notes.a=2Eb=20c"); err != nil {
		t.Errorf("layout: raw key not found: %v", err)
	}
}

func TestKVKeysRoundTrip(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	const ns = "alice:capsule:keys"
	keys := []string{
		"plain",
		"with.dots.in.it",
		"colon:key:here",
		"spaces in key",
		"unicode-\u00e9\u00e8-\u65e5\u672c-\U0001F600",
		"=2E",    // looks like an escape
		"=",      // the escape byte itself
		"*", ">", // wildcards are data here
		"a/b\\c",
		"__state",
		"-leading-dash",
		".leading.dot",
		"trailing.dot.",
		strings.Repeat("\u00e9", 128), // 256 bytes, all escaped
		strings.Repeat("k", 256),
	}
	for i, k := range keys {
		mustPut(t, kv, ns, k, strconv.Itoa(i))
	}
	for i, k := range keys {
		if got := mustGet(t, kv, ns, k); got != strconv.Itoa(i) {
			t.Errorf("Get(%q) = %q, want %d", k, got, i)
		}
	}
	got, err := kv.Keys(ctx, ns, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Keys =\n%q\nwant\n%q", got, want)
	}
	// Prefixes over escaped bytes.
	for prefix, want := range map[string][]string{
		"with.":          {"with.dots.in.it"},
		"=":              {"=", "=2E"},
		"unicode-\u00e9": {"unicode-\u00e9\u00e8-\u65e5\u672c-\U0001F600"},
		"colon:":         {"colon:key:here"},
		"nope":           {},
	} {
		got, err := kv.Keys(ctx, ns, prefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Keys(prefix %q) = %q, want %q", prefix, got, want)
		}
	}
}

func TestKVInvalidInput(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	keyTests := []struct {
		name     string
		key      string
		tooLarge bool
	}{
		{name: "empty", key: ""},
		{name: "257 bytes", key: strings.Repeat("k", 257), tooLarge: true},
		{name: "nul", key: "a\x00b"},
		{name: "newline", key: "a\nb"},
		{name: "del", key: "a\x7f"},
		{name: "invalid utf-8", key: "a\xffb"},
		{name: "c1 control", key: "a\u0085b"},
	}
	for _, tt := range keyTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kv.Put(ctx, "alice:capsule:x", tt.key, []byte("v"))
			var ke *bus.KeyError
			if !errors.As(err, &ke) || ke.TooLarge != tt.tooLarge || !errors.Is(err, bus.ErrInvalidKey) ||
				errors.Is(err, bus.ErrTooLarge) != tt.tooLarge {
				t.Fatalf("Put: err = %v, want KeyError with TooLarge %v", err, tt.tooLarge)
			}
			if _, _, err := kv.Get(ctx, "alice:capsule:x", tt.key); !errors.Is(err, bus.ErrInvalidKey) {
				t.Errorf("Get: err = %v", err)
			}
		})
	}
	for _, ns := range []string{"", "alice::x", ":capsule:x", "alice:capsule:"} {
		if _, err := kv.Put(ctx, ns, "k", nil); !errors.Is(err, bus.ErrInvalidNamespace) {
			t.Errorf("namespace %q: err = %v", ns, err)
		}
		if _, err := kv.Keys(ctx, ns, "", 0); !errors.Is(err, bus.ErrInvalidNamespace) {
			t.Errorf("Keys in namespace %q: err = %v", ns, err)
		}
	}
	if _, err := kv.Keys(ctx, "alice:capsule:x", strings.Repeat("p", 257), 0); !errors.Is(err, bus.ErrTooLarge) {
		t.Errorf("long prefix: err = %v", err)
	}
	// Values up to 1 MiB are stored; larger ones are refused.
	max := bytes.Repeat([]byte("v"), bus.MaxValueBytes)
	if _, err := kv.Put(ctx, "alice:capsule:x", "big", max); err != nil {
		t.Errorf("1 MiB value: %v", err)
	}
	if v, _, err := kv.Get(ctx, "alice:capsule:x", "big"); err != nil || len(v) != bus.MaxValueBytes {
		t.Errorf("1 MiB value read back: %d bytes, %v", len(v), err)
	}
	if _, err := kv.Put(ctx, "alice:capsule:x", "big", append(max, 'x')); !errors.Is(err, bus.ErrTooLarge) {
		t.Errorf("value over 1 MiB: err = %v", err)
	}
}

func TestKVDeleteIdempotent(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	const ns = "alice:capsule:x"
	if err := kv.Delete(ctx, ns, "never-existed"); err != nil {
		t.Errorf("delete of a missing key: %v", err)
	}
	rev1 := mustPut(t, kv, ns, "k", "1")
	rev2 := mustPut(t, kv, ns, "k", "2")
	if rev2 <= rev1 {
		t.Errorf("revisions %d then %d", rev1, rev2)
	}
	if _, rev, err := kv.Get(ctx, ns, "k"); err != nil || rev != rev2 {
		t.Errorf("Get revision = %d, %v; want %d", rev, err, rev2)
	}
	for range 2 {
		if err := kv.Delete(ctx, ns, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := kv.Get(ctx, ns, "k"); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Errorf("after delete: err = %v", err)
	}
	if keys, err := kv.Keys(ctx, ns, "", 0); err != nil || len(keys) != 0 {
		t.Errorf("Keys after delete = %v, %v", keys, err)
	}
}

func TestKVCAS(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	const ns = "alice:capsule:cas"
	steps := []struct {
		name     string
		expected string
		absent   bool
		val      string
		wantErr  error
		want     string // value afterwards
	}{
		{name: "expected on a missing key", expected: "x", val: "1", wantErr: bus.ErrCASMismatch},
		{name: "create when absent", absent: true, val: "1", want: "1"},
		{name: "create when present", absent: true, val: "2", wantErr: bus.ErrCASMismatch, want: "1"},
		{name: "wrong expected", expected: "0", val: "2", wantErr: bus.ErrCASMismatch, want: "1"},
		{name: "right expected", expected: "1", val: "2", want: "2"},
		{name: "empty expected is not absent", expected: "", val: "3", wantErr: bus.ErrCASMismatch, want: "2"},
	}
	var lastRev uint64
	for _, st := range steps {
		rev, err := kv.CAS(ctx, ns, "k", []byte(st.expected), st.absent, []byte(st.val))
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
		if err == nil {
			if rev <= lastRev {
				t.Errorf("%s: revision %d not after %d", st.name, rev, lastRev)
			}
			lastRev = rev
		}
		if st.want != "" {
			if got := mustGet(t, kv, ns, "k"); got != st.want {
				t.Errorf("%s: value = %q, want %q", st.name, got, st.want)
			}
		}
	}
	// After a delete the key is absent again.
	if err := kv.Delete(ctx, ns, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CAS(ctx, ns, "k", nil, true, []byte("fresh")); err != nil {
		t.Errorf("create after delete: %v", err)
	}
}

// TestKVCASHammer increments one counter from several goroutines with a
// CAS loop; no increment may be lost.
func TestKVCASHammer(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	const ns, workers, each = "alice:capsule:hammer", 4, 25
	if _, err := kv.CAS(ctx, ns, "n", nil, true, []byte("0")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					cur, _, err := kv.Get(ctx, ns, "n")
					if err != nil {
						errs <- err
						return
					}
					n, _ := strconv.Atoi(string(cur))
					_, err = kv.CAS(ctx, ns, "n", cur, false, []byte(strconv.Itoa(n+1)))
					if err == nil {
						break
					}
					if !errors.Is(err, bus.ErrCASMismatch) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := mustGet(t, kv, ns, "n"); got != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d", got, workers*each)
	}
}

func TestKVKeysLimitAndClearPrefix(t *testing.T) {
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	const ns = "bob:capsule:list"
	for i := range 5 {
		mustPut(t, kv, ns, "p"+strconv.Itoa(i), "v")
	}
	mustPut(t, kv, ns, "q", "v")
	mustPut(t, kv, "bob:capsule:other", "p9", "v") // same prefix, other namespace

	if keys, err := kv.Keys(ctx, ns, "p", 5); err != nil || len(keys) != 5 {
		t.Errorf("Keys(p, 5) = %v, %v", keys, err)
	}
	if _, err := kv.Keys(ctx, ns, "p", 4); !errors.Is(err, bus.ErrTooManyKeys) {
		t.Errorf("Keys(p, 4): err = %v", err)
	}
	if keys, err := kv.Keys(ctx, ns, "", 0); err != nil || len(keys) != 6 {
		t.Errorf("Keys(all) = %v, %v", keys, err)
	}
	if got, err := kv.Usage(ctx, ns); err != nil || got != 5*(2+1)+(1+1) {
		t.Errorf("Usage = %d, %v; want %d", got, err, 5*3+2)
	}
	n, err := kv.ClearPrefix(ctx, ns, "p")
	if err != nil || n != 5 {
		t.Fatalf("ClearPrefix(p) = %d, %v", n, err)
	}
	if keys, err := kv.Keys(ctx, ns, "", 0); err != nil || !slices.Equal(keys, []string{"q"}) {
		t.Errorf("after clear: keys = %v, %v", keys, err)
	}
	if n, err := kv.ClearPrefix(ctx, ns, "p"); err != nil || n != 0 {
		t.Errorf("second ClearPrefix = %d, %v", n, err)
	}
	if got := mustGet(t, kv, "bob:capsule:other", "p9"); got != "v" {
		t.Errorf("other namespace lost p9")
	}
	if got, err := kv.Usage(ctx, "nobody:capsule:x"); err != nil || got != 0 {
		t.Errorf("Usage of an empty namespace = %d, %v", got, err)
	}
}

// TestKVKeysManyStopsEarly lists a namespace larger than the watcher's
// channel buffer with a small limit, which must not hang or leak.
func TestKVKeysManyStopsEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 600 keys")
	}
	t.Parallel()
	s := bustest.RunServer(t)
	kv := openKV(t, bustest.Conn(t, s))
	ctx := testCtx(t)
	const ns = "carol:capsule:many"
	for i := range 600 {
		mustPut(t, kv, ns, "k"+strconv.Itoa(i), "v")
	}
	for range 3 {
		if _, err := kv.Keys(ctx, ns, "", 10); !errors.Is(err, bus.ErrTooManyKeys) {
			t.Fatalf("err = %v", err)
		}
	}
	keys, err := kv.Keys(ctx, ns, "", 1024)
	if err != nil || len(keys) != 600 {
		t.Fatalf("Keys = %d, %v", len(keys), err)
	}
}

func TestKVDurableAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := bustest.RunServerAt(t, dir)
	c := bustest.Conn(t, s)
	kv := openKV(t, c)
	mustPut(t, kv, "alice:capsule:durable", "k", "survives")
	mustPut(t, kv, "alice:capsule:durable", "gone", "x")
	if err := kv.Delete(testCtx(t), "alice:capsule:durable", "gone"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Shutdown()

	s2 := bustest.RunServerAt(t, dir)
	kv2 := openKV(t, bustest.Conn(t, s2))
	if got := mustGet(t, kv2, "alice:capsule:durable", "k"); got != "survives" {
		t.Fatalf("after restart: %q", got)
	}
	if _, _, err := kv2.Get(testCtx(t), "alice:capsule:durable", "gone"); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Errorf("deleted key after restart: err = %v", err)
	}
}
