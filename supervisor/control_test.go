package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/supervisor"
)

var (
	cacheOnce sync.Once
	cacheDir  string
)

// sharedCache is one wazero compilation cache for every node of the test
// binary (like capsuletest's guest builds, it outlives the tests).
func sharedCache(t *testing.T) string {
	cacheOnce.Do(func() {
		d, err := os.MkdirTemp("", "astrid-ctl-cache-")
		if err != nil {
			t.Fatal(err)
		}
		cacheDir = d
	})
	return cacheDir
}

// ctlNode is a node with an outside client connected over TCP and a
// recorder of its capsule events.
type ctlNode struct {
	*supervisor.Node
	t      *testing.T
	client *bus.Conn
	events *recorder
	data   string
	stop   func()
}

// startCtlNode starts node id, on its own embedded NATS (natsURL "") or
// on the NATS at natsURL, and loads dirs.
func startCtlNode(t *testing.T, id, natsURL string, dirs ...string) *ctlNode {
	t.Helper()
	return startCtlNodeAt(t, id, natsURL, t.TempDir(), dirs...)
}

// startCtlNodeAt is startCtlNode with the node's data under data.
func startCtlNodeAt(t *testing.T, id, natsURL, data string, dirs ...string) *ctlNode {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	cfg := supervisor.Config{DataDir: data, NodeID: id, CacheDir: sharedCache(t), Logger: log}
	if natsURL == "" {
		cfg.NATSListen = "127.0.0.1:-1"
	} else {
		cfg.NATSURL = natsURL
	}
	ctx := context.Background()
	n, err := supervisor.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				t.Errorf("shutdown %s: %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	c, err := bus.Connect(ctx, n.ClientURL(), "test-client", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cn := &ctlNode{Node: n, t: t, client: c, events: record(t, c, "astrid.v1.capsule.*"), data: cfg.DataDir, stop: stop}
	if len(dirs) > 0 {
		rep, err := n.Load(ctx, dirs...)
		if err != nil || len(rep.Failed) > 0 || len(rep.NotReady) > 0 {
			t.Fatalf("load: %+v %v", rep, err)
		}
	}
	return cn
}

// examples builds the example capsules into fresh capsule dirs.
func examples(t *testing.T, names ...string) []string {
	t.Helper()
	var dirs []string
	for _, n := range names {
		dirs = append(dirs, capsuletest.CapsuleDir(t, "examples/"+n, n+".wasm"))
	}
	return dirs
}

// withVersion copies capsule dir into a new dir with the manifest's version
// replaced (and extra TOML appended).
func withVersion(t *testing.T, dir, version, extra string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(dir))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "Capsule.toml" {
			s := strings.Replace(string(b), `version = "0.1.0"`, `version = "`+version+`"`, 1)
			b = []byte(s + "\n" + extra + "\n")
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// ctl sends a control request to one target and returns the single reply.
func (n *ctlNode) ctl(verb, target string, body any) bus.ServiceReply {
	n.t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	default:
		data, _ = json.Marshal(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := n.client.RequestService(ctx, bus.ControlTopic(verb, target), data)
	if err != nil {
		n.t.Fatalf("%s.%s: %v", verb, target, err)
	}
	return r
}

// ok decodes a successful reply into v.
func ok[T any](t *testing.T, r bus.ServiceReply) T {
	t.Helper()
	var v T
	if r.Err != nil {
		t.Fatalf("error reply %s: %s (%s)", r.Err.Code, r.Err.Description, r.Data)
	}
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("reply %q: %v", r.Data, err)
	}
	return v
}

func (n *ctlNode) echo(payload string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := n.client.Request(ctx, &bus.Message{Topic: "echo.v1.request", Payload: []byte(payload)})
	if err != nil {
		return err
	}
	if e := resp.Header.Get(bus.HeaderError); e != "" {
		return errors.New(e)
	}
	if string(resp.Data) != payload {
		return errors.New("echo answered " + string(resp.Data))
	}
	return nil
}

func (n *ctlNode) info(id string) supervisor.CapsuleInfo {
	n.t.Helper()
	ps := ok[supervisor.PsReply](n.t, n.ctl(supervisor.VerbPs, n.ID(), nil))
	for _, c := range ps.Capsules {
		if c.ID == id {
			return c
		}
	}
	n.t.Fatalf("ps has no %s: %+v", id, ps.Capsules)
	return supervisor.CapsuleInfo{}
}

// recorder collects messages on a pattern as an outside subscriber.
type recorder = bustest.Recorder

func record(t *testing.T, c *bus.Conn, pattern string) *recorder {
	return bustest.Record(t, c, pattern)
}

func TestSupervisorControlPsListsReadyCapsules(t *testing.T) {
	n := startCtlNode(t, "n1", "", examples(t, "echo", "counter", "ticker")...)
	for _, target := range []string{"n1", bus.ControlAll} {
		ps := ok[supervisor.PsReply](t, n.ctl(supervisor.VerbPs, target, nil))
		if ps.Node != "n1" || len(ps.Capsules) != 3 {
			t.Fatalf("ps.%s = %+v", target, ps)
		}
		for i, want := range []struct {
			id      string
			runLoop bool
		}{{"counter", false}, {"echo", false}, {"ticker", true}} {
			c := ps.Capsules[i]
			if c.ID != want.id || c.State != "ready" || c.Version != "0.1.0" || c.RunLoop != want.runLoop || c.Restarts != 0 {
				t.Errorf("ps.%s capsule %d = %+v, want %s ready 0.1.0", target, i, c, want.id)
			}
		}
	}
	ping := ok[supervisor.PingReply](t, n.ctl(supervisor.VerbPing, "n1", nil))
	if ping.Node != "n1" || ping.Capsules != 3 || ping.Ready != 3 || ping.NATSURL != n.ClientURL() || ping.Version == "" {
		t.Errorf("ping = %+v", ping)
	}
	// Another node's id has no responder.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.client.RequestService(ctx, bus.ControlTopic(supervisor.VerbPs, "nobody"), nil); !errors.Is(err, bus.ErrNoResponders) {
		t.Errorf("ps.nobody: %v, want no responders", err)
	}
}

// A stopped capsule leaves the router: the node holds no subscription for
// its topics, so a request gets "no responders" at once (not a typed error:
// in a cluster the other nodes' instances must get that traffic).
func TestSupervisorControlStopAndStart(t *testing.T) {
	n := startCtlNode(t, "n1", "", examples(t, "echo", "ticker")...)
	if err := n.echo(`{"a":1}`); err != nil {
		t.Fatal(err)
	}
	r := ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStop, "n1", supervisor.CapsuleRequest{Capsule: "echo"}))
	if r.Capsule.State != "stopped" || !r.Changed || r.Node != "n1" {
		t.Fatalf("stop = %+v", r)
	}
	if err := n.echo(`{"a":2}`); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("request to a stopped capsule: %v, want no responders", err)
	}
	n.events.WaitCount(t, "astrid.v1.capsule.echo.stopped", 1, 5*time.Second)
	if got := n.info("echo").State; got != "stopped" {
		t.Errorf("ps state %q", got)
	}
	if got := n.info("ticker").State; got != "ready" {
		t.Errorf("ticker state %q after stopping echo", got)
	}
	// Stopping again changes nothing; restarting a stopped capsule is refused.
	if r := ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStop, "n1", supervisor.CapsuleRequest{Capsule: "echo"})); r.Changed {
		t.Errorf("second stop changed %+v", r)
	}
	if rr := n.ctl(supervisor.VerbRestart, "n1", supervisor.CapsuleRequest{Capsule: "echo"}); rr.Err == nil || rr.Err.Code != supervisor.CodeConflict {
		t.Errorf("restart of a stopped capsule: %+v", rr)
	}
	started := n.events.Count("astrid.v1.capsule.echo.started")
	r = ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStart, "n1", supervisor.CapsuleRequest{Capsule: "echo"}))
	if r.Capsule.State != "ready" || !r.Changed {
		t.Fatalf("start = %+v", r)
	}
	n.events.WaitCount(t, "astrid.v1.capsule.echo.started", started+1, 5*time.Second)
	if err := n.echo(`{"a":3}`); err != nil {
		t.Fatalf("after start: %v", err)
	}
	// A run-loop capsule stops and starts too, and relays again.
	ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStop, "n1", supervisor.CapsuleRequest{Capsule: "ticker"}))
	if r := ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStart, "n1", supervisor.CapsuleRequest{Capsule: "ticker"})); r.Capsule.State != "ready" {
		t.Fatalf("ticker start = %+v", r)
	}
	out := record(t, n.client, "ticker.v1.out")
	if err := n.client.Publish(&bus.Message{Topic: "ticker.v1.in", Payload: []byte(`{"n":7}`)}); err != nil {
		t.Fatal(err)
	}
	if got := out.WaitCount(t, "ticker.v1.out", 1, 5*time.Second); !strings.Contains(string(got), `"n":7`) {
		t.Errorf("ticker relayed %s", got)
	}
	// Starting a running capsule changes nothing.
	if r := ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStart, "n1", supervisor.CapsuleRequest{Capsule: "echo"})); r.Changed || r.Capsule.State != "ready" {
		t.Errorf("start of a running capsule = %+v", r)
	}
}

func TestSupervisorControlRestart(t *testing.T) {
	n := startCtlNode(t, "n1", "", examples(t, "echo", "ticker")...)
	for _, tc := range []struct {
		name  string
		check func() error
	}{
		{"echo", func() error { return n.echo(`{"r":1}`) }},
		{"ticker", func() error {
			out := record(t, n.client, "ticker.v1.out")
			if err := n.client.Publish(&bus.Message{Topic: "ticker.v1.in", Payload: []byte(`{"r":2}`)}); err != nil {
				return err
			}
			out.WaitCount(t, "ticker.v1.out", 1, 5*time.Second)
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "astrid.v1.capsule." + tc.name + ".restarted"
			before := n.events.Count(topic)
			r := ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbRestart, "n1", supervisor.CapsuleRequest{Capsule: tc.name}))
			if r.Capsule.State != "ready" || r.Capsule.Restarts != 1 || !r.Changed {
				t.Fatalf("restart = %+v", r)
			}
			var ev supervisor.Event
			if err := json.Unmarshal(n.events.WaitCount(t, topic, before+1, 5*time.Second), &ev); err != nil || ev.Incarnation != 2 || ev.Node != "n1" {
				t.Errorf("restarted event %+v %v", ev, err)
			}
			if err := tc.check(); err != nil {
				t.Errorf("after restart: %v", err)
			}
		})
	}
}

// start brings a quarantined capsule back with a fresh restart budget.
func TestSupervisorControlStartQuarantined(t *testing.T) {
	dir := capsuletest.CapsuleDir(t, "capsule/testdata/guests/crashon", "crashon.wasm")
	f, err := os.OpenFile(filepath.Join(dir, "Capsule.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[supervision]\nmax_restarts = 1\nwithin = \"1m\"\n")
	f.Close()
	n := startCtlNode(t, "n1", "", dir)
	req := func(payload string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := n.client.Request(ctx, &bus.Message{Topic: "crashon.v1.in", Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Get(bus.HeaderError)
	}
	for i := 0; n.events.Count("astrid.v1.capsule.crashon.quarantined") == 0; i++ {
		if i == 10 {
			t.Fatal("never quarantined")
		}
		req(`{"crash":true,"i":` + string(rune('0'+i)) + `}`)
	}
	if e := req(`{"ok":1}`); !strings.HasPrefix(e, "quarantined") {
		t.Fatalf("quarantined capsule answered %q", e)
	}
	r := ok[supervisor.CapsuleReply](t, n.ctl(supervisor.VerbStart, "n1", supervisor.CapsuleRequest{Capsule: "crashon"}))
	if r.Capsule.State != "ready" || !r.Changed {
		t.Fatalf("start = %+v", r)
	}
	if e := req(`{"ok":2}`); e != "" {
		t.Fatalf("after start: %q", e)
	}
	// The budget is fresh: one more crash is a restart, not a quarantine.
	req(`{"crash":true,"i":"again"}`)
	if e := req(`{"ok":3}`); e != "" {
		t.Errorf("after one crash with a fresh budget: %q", e)
	}
}

func TestSupervisorControlBadRequests(t *testing.T) {
	n := startCtlNode(t, "n1", "", examples(t, "echo")...)
	for _, tc := range []struct {
		name, verb string
		body       any
		code, want string
	}{
		{"unknown capsule", supervisor.VerbStop, supervisor.CapsuleRequest{Capsule: "nope"}, supervisor.CodeNotFound, "unknown capsule"},
		{"no capsule", supervisor.VerbStart, `{}`, supervisor.CodeBadRequest, `"capsule" is required`},
		{"not json", supervisor.VerbRestart, `echo`, supervisor.CodeBadRequest, "invalid control request"},
		{"unknown field", supervisor.VerbStop, `{"capsule":"echo","force":true}`, supervisor.CodeBadRequest, "unknown field"},
		{"upgrade no dir", supervisor.VerbUpgrade, `{}`, supervisor.CodeBadRequest, `"dir" is required`},
		{"upgrade missing dir", supervisor.VerbUpgrade, supervisor.UpgradeRequest{Dir: "/nonexistent/x"}, supervisor.CodeBadRequest, "no such file"},
		{"elicit bad principal", supervisor.VerbElicit, `{"request_id":"r1","principal":"a b"}`, supervisor.CodeBadRequest, "principal"},
		{"deploy no key", supervisor.VerbDeploy, `{}`, supervisor.CodeBadRequest, `"bucket_key" is required`},
		{"deploy missing bucket", supervisor.VerbDeploy, supervisor.DeployRequest{BucketKey: "echo/9/x"}, supervisor.CodeNotFound, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := n.ctl(tc.verb, "n1", tc.body)
			if r.Err == nil || r.Err.Code != tc.code || !strings.Contains(r.Err.Description, tc.want) {
				t.Fatalf("reply %+v (%s), want %s %q", r.Err, r.Data, tc.code, tc.want)
			}
			var body supervisor.ControlError
			if err := json.Unmarshal(r.Data, &body); err != nil || body.Node != "n1" || body.Code != tc.code || body.Error == "" {
				t.Errorf("error body %s: %v", r.Data, err)
			}
		})
	}
	if err := n.echo(`{}`); err != nil {
		t.Errorf("node unhealthy after bad requests: %v", err)
	}
}

// upgrade from another directory switches the version without losing a
// request, and a later Reload (SIGHUP) keeps the upgraded version instead
// of going back to the directory the capsule was first loaded from.
func TestSupervisorControlUpgradeFromDir(t *testing.T) {
	dirs := examples(t, "echo")
	n := startCtlNode(t, "n1", "", dirs...)
	v2 := withVersion(t, dirs[0], "0.2.0", "")

	stop := make(chan struct{})
	errs := make(chan error, 1)
	var served int
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := n.echo(`{"i":` + strings.Repeat("1", 1+i%5) + `}`); err != nil {
				errs <- err
				return
			}
			served++
		}
	}()
	r := ok[supervisor.UpgradeReply](t, n.ctl(supervisor.VerbUpgrade, "n1", supervisor.UpgradeRequest{Dir: v2}))
	if len(r.Upgraded) != 1 || r.Upgraded[0] != "echo" || len(r.Failed) != 0 {
		t.Fatalf("upgrade = %+v", r)
	}
	if got := n.info("echo"); got.Version != "0.2.0" || got.State != "ready" {
		t.Fatalf("after upgrade: %+v", got)
	}
	var ev supervisor.Event
	if err := json.Unmarshal(n.events.WaitCount(t, "astrid.v1.capsule.echo.upgraded", 1, 5*time.Second), &ev); err != nil || ev.Previous != "0.1.0" || ev.Version != "0.2.0" {
		t.Errorf("upgraded event %+v %v", ev, err)
	}
	// Keep the traffic going until the retired generation has stopped
	// (it lingers two seconds), so its exit cannot take the routes along.
	retired := time.After(3 * time.Second)
	select {
	case err := <-errs:
		t.Fatalf("request failed across the upgrade: %v", err)
	case <-retired:
	}
	close(stop)
	if err, failed := <-errs; failed {
		t.Fatalf("request failed across the upgrade: %v", err)
	}
	t.Logf("%d requests across the upgrade", served)

	rr, err := n.Reload(context.Background())
	if err != nil || len(rr.Upgraded) != 0 || len(rr.Failed) != 0 {
		t.Fatalf("reload after upgrade: %+v %v", rr, err)
	}
	if got := n.info("echo").Version; got != "0.2.0" {
		t.Errorf("reload went back to %s", got)
	}
	// The same dir again: nothing to do.
	if r := ok[supervisor.UpgradeReply](t, n.ctl(supervisor.VerbUpgrade, "n1", supervisor.UpgradeRequest{Dir: v2})); len(r.Upgraded)+len(r.Added) != 0 {
		t.Errorf("second upgrade = %+v", r)
	}
}

// A failing upgrade is an error reply that still carries the report, and
// the old version keeps serving.
func TestSupervisorControlUpgradeFailure(t *testing.T) {
	dirs := examples(t, "echo")
	n := startCtlNode(t, "n1", "", dirs...)
	bad := withVersion(t, dirs[0], "0.3.0", "")
	if err := os.WriteFile(filepath.Join(bad, "echo.wasm"), []byte("\x00asm\x01\x00\x00\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := n.ctl(supervisor.VerbUpgrade, "n1", supervisor.UpgradeRequest{Dir: bad})
	if r.Err == nil || r.Err.Code != supervisor.CodeInternal || !strings.Contains(r.Err.Description, "echo") {
		t.Fatalf("reply %+v", r.Err)
	}
	var rep supervisor.UpgradeReply
	if err := json.Unmarshal(r.Data, &rep); err != nil || rep.Node != "n1" || rep.Failed["echo"] == "" {
		t.Errorf("error body %s: %v", r.Data, err)
	}
	if got := n.info("echo"); got.Version != "0.1.0" || got.State != "ready" {
		t.Errorf("after a failed upgrade: %+v", got)
	}
	if err := n.echo(`{"still":1}`); err != nil {
		t.Error(err)
	}
}

func TestSupervisorControlDeployRoundTrip(t *testing.T) {
	dirs := examples(t, "echo", "counter")
	n := startCtlNode(t, "n1", "", dirs[1]) // counter only: echo arrives by deploy
	store, err := bus.OpenObjectStore(context.Background(), n.client, bus.ObjectStoreConfig{Bucket: supervisor.CapsuleBucket, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	push := func(dir string) string {
		a, err := supervisor.PackCapsule(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(context.Background(), a.Key, a.Data, "test"); err != nil {
			t.Fatal(err)
		}
		return a.Key
	}
	deploy := func(key string, labels map[string]string) supervisor.DeployReply {
		return ok[supervisor.DeployReply](t, n.ctl(supervisor.VerbDeploy, bus.ControlAll, supervisor.DeployRequest{BucketKey: key, Labels: labels}))
	}
	key := push(dirs[0])
	if !strings.HasPrefix(key, "echo/0.1.0/") {
		t.Errorf("key %q", key)
	}
	r := deploy(key, nil)
	want := filepath.Join(n.data, supervisor.DeployedDir, "echo")
	if r.Action != "loaded" || r.Capsule != "echo" || r.Version != "0.1.0" || r.Dir != want || r.Node != "n1" {
		t.Fatalf("deploy = %+v", r)
	}
	if err := n.echo(`{"deployed":1}`); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(want, "echo.wasm")); err != nil {
		t.Error(err)
	}
	// A new version hot-upgrades; the same one again changes nothing.
	key2 := push(withVersion(t, dirs[0], "0.2.0", ""))
	if r := deploy(key2, nil); r.Action != "upgraded" || r.Version != "0.2.0" {
		t.Fatalf("deploy v2 = %+v", r)
	}
	if got := n.info("echo").Version; got != "0.2.0" {
		t.Errorf("version %s after deploy", got)
	}
	if r := deploy(key2, nil); r.Action != "unchanged" {
		t.Errorf("redeploy = %+v", r)
	}
	// A selector the node's labels do not satisfy: skipped.
	if r := deploy(key, map[string]string{"zone": "nowhere"}); r.Action != "skipped" || r.Reason == "" {
		t.Errorf("deploy with a foreign selector = %+v", r)
	}
	if got := n.info("echo").Version; got != "0.2.0" {
		t.Errorf("skipped deploy changed the version to %s", got)
	}
	if r := n.ctl(supervisor.VerbDeploy, "n1", supervisor.DeployRequest{BucketKey: "echo/9.9.9/none"}); r.Err == nil || r.Err.Code != supervisor.CodeNotFound {
		t.Errorf("missing key: %+v", r.Err)
	}

	// A restarted node on the same data brings the deployed version back,
	// even when it is also given the original directory.
	n.stop()
	again := startCtlNodeAt(t, "n1", "", n.data, dirs[1], dirs[0])
	if got := again.info("echo"); got.Version != "0.2.0" || got.State != "ready" {
		t.Errorf("after a restart: %+v", got)
	}
	if err := again.echo(`{"back":1}`); err != nil {
		t.Error(err)
	}
	if rr, err := again.Reload(context.Background()); err != nil || len(rr.Upgraded)+len(rr.Added)+len(rr.Failed) != 0 {
		t.Errorf("reload after the restart: %+v %v", rr, err)
	}
	if got := again.info("echo").Version; got != "0.2.0" {
		t.Errorf("reload went back to %s", got)
	}
}

func TestSupervisorControlElicitPublishesTheAnswer(t *testing.T) {
	n := startCtlNode(t, "n1", "", examples(t, "echo")...)
	got := record(t, n.client, "astrid.v1.elicit.response.r-42")
	v := "metric"
	r := ok[supervisor.ElicitReply](t, n.ctl(supervisor.VerbElicit, "n1", supervisor.ElicitAnswer{RequestID: "r-42", Principal: "alice", Value: &v}))
	if r.Topic != "astrid.v1.elicit.response.r-42" {
		t.Errorf("reply %+v", r)
	}
	body := got.WaitCount(t, "astrid.v1.elicit.response.r-42", 1, 5*time.Second)
	var resp supervisor.ElicitResponse
	if err := json.Unmarshal(body, &resp); err != nil || resp.RequestID != "r-42" || resp.Value == nil || *resp.Value != "metric" {
		t.Errorf("published %s: %v", body, err)
	}
	principal := got.Snapshot()[0].Principal
	if principal != "alice" {
		t.Errorf("published for principal %q", principal)
	}
}

func TestSupervisorControlServiceDiscovery(t *testing.T) {
	n := startCtlNode(t, "n1", "", examples(t, "echo")...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// micro's discovery: $SRV.INFO.astrid-ctl lists both endpoints of each verb.
	resp, err := n.client.NATS().RequestWithContext(ctx, "$SRV.INFO."+supervisor.ControlService, nil)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Name      string            `json:"name"`
		Metadata  map[string]string `json:"metadata"`
		Endpoints []struct {
			Name, Subject string
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(resp.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != supervisor.ControlService || info.Metadata["node"] != "n1" || len(info.Endpoints) != 16 {
		t.Fatalf("info %+v", info)
	}
	found := false
	for _, e := range info.Endpoints {
		found = found || (e.Name == "ps-all" && e.Subject == "astrid.v1.ctl.ps.all")
	}
	if !found {
		t.Errorf("no ps-all endpoint on astrid.v1.ctl.ps.all: %+v", info.Endpoints)
	}
}
