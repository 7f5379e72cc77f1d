package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
)

// ctlNode is an in-process node of a control-plane test; stop shuts it
// down (once).
type ctlNode struct {
	*supervisor.Node
	stop func()
}

// startCtlNode starts node id with labels, on its own embedded NATS
// (natsURL "") or on the NATS at natsURL, with a fast heartbeat, and loads
// dirs.
func startCtlNode(t *testing.T, id, natsURL string, labels map[string]string, dirs ...string) *ctlNode {
	t.Helper()
	cfg := supervisor.Config{DataDir: t.TempDir(), NodeID: id, CacheDir: cacheDir, Labels: labels,
		HeartbeatInterval: 200 * time.Millisecond,
		Logger:            zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	if natsURL == "" {
		cfg.NATSListen = "127.0.0.1:-1"
	} else {
		cfg.NATSURL = natsURL
	}
	n, err := supervisor.Start(context.Background(), cfg)
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
	if len(dirs) > 0 {
		rep, err := n.Load(context.Background(), dirs...)
		if err != nil || len(rep.Failed) > 0 {
			t.Fatalf("load %s: %+v %v", id, rep, err)
		}
	}
	return &ctlNode{Node: n, stop: stop}
}

// astridCLI runs the built astrid binary and returns its exit code and
// stdout (stderr goes to the test log).
func astridCLI(t *testing.T, args ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, astridBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if errb.Len() > 0 {
		t.Logf("astrid %v: %s", args, errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.Bytes()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.Bytes()
	}
	t.Fatalf("astrid %v: %v", args, err)
	return -1, nil
}

func cliJSON[T any](t *testing.T, wantCode int, args ...string) T {
	t.Helper()
	code, out := astridCLI(t, args...)
	if code != wantCode {
		t.Fatalf("astrid %v: exit %d, want %d\n%s", args, code, wantCode, out)
	}
	var v T
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("astrid %v: output is not JSON: %v\n%s", args, err, out)
	}
	return v
}

// Two nodes on one NATS: a request to astrid.v1.ctl.<verb>.all gathers
// one reply per node, deploys follow labels, and the CLI drives both.
func TestIntegrationControlTwoNodes(t *testing.T) {
	echo := capsuleDir(t, "examples/echo", "")
	counter := capsuleDir(t, "examples/counter", "")
	n1 := startCtlNode(t, "n1", "", map[string]string{"zone": "a"}, echo)
	n2 := startCtlNode(t, "n2", n1.ClientURL(), map[string]string{"zone": "b"}, echo)
	url := n1.ClientURL()
	client, err := bus.Connect(context.Background(), url, "test-client", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The bus client: both nodes answer ps.all.
	replies, err := client.Gather(ctx, bus.ControlTopic(supervisor.VerbPs, bus.ControlAll), nil,
		bus.GatherOptions{Done: func(rs []bus.ServiceReply) bool { return len(rs) == 2 }})
	if err != nil || len(replies) != 2 {
		t.Fatalf("ps.all: %d replies, %v", len(replies), err)
	}
	var nodes []string
	for _, r := range replies {
		var ps supervisor.PsReply
		if r.Err != nil || json.Unmarshal(r.Data, &ps) != nil || len(ps.Capsules) != 1 || ps.Capsules[0].State != "ready" {
			t.Errorf("ps reply %s %+v", r.Data, r.Err)
		}
		nodes = append(nodes, ps.Node)
	}
	if slices.Sort(nodes); !slices.Equal(nodes, []string{"n1", "n2"}) {
		t.Errorf("ps.all answered by %v", nodes)
	}

	// The CLI: ps and nodes gather both nodes.
	ps := cliJSON[[]supervisor.PsReply](t, 0, "ps", "--json", "-s", url)
	if len(ps) != 2 || ps[0].Node != "n1" || ps[1].Node != "n2" || ps[1].Capsules[0].ID != "echo" {
		t.Fatalf("astrid ps --json = %+v", ps)
	}
	type row struct {
		Node, Status string
		Labels       map[string]string
		Capsules     int
	}
	rows := cliJSON[[]row](t, 0, "nodes", "--json", "-s", url)
	if len(rows) != 2 || rows[0].Node != "n1" || rows[0].Status != "up" || rows[0].Labels["zone"] != "a" || rows[1].Labels["zone"] != "b" || rows[1].Capsules != 1 {
		t.Fatalf("astrid nodes --json = %+v", rows)
	}

	// Deploy counter on zone b only.
	deployed := cliJSON[[]supervisor.DeployReply](t, 0, "deploy", "--json", "--label", "zone=b", "-s", url, counter)
	if len(deployed) != 2 || deployed[0].Action != "skipped" || deployed[1].Action != "loaded" || deployed[1].Capsule != "counter" {
		t.Fatalf("astrid deploy --label zone=b = %+v", deployed)
	}
	resp, err := client.Request(ctx, &bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{}`), Principal: "alice"})
	if err != nil || resp.Header.Get(bus.HeaderError) != "" || bus.EnvelopeNode(resp.Header) != "n2" {
		t.Fatalf("counter after deploy: %v %v from %q", err, resp.Header, bus.EnvelopeNode(resp.Header))
	}
	if code, _ := astridCLI(t, "deploy", "--label", "zone=c", "-s", url, counter); code != 1 {
		t.Errorf("deploy to no matching node: exit %d, want 1", code)
	}

	// Stop echo on n1 only: n2 still serves it.
	stopped := cliJSON[[]supervisor.CapsuleReply](t, 0, "stop", "echo", "--node", "n1", "--json", "-s", url)
	if len(stopped) != 1 || stopped[0].Node != "n1" || stopped[0].Capsule.State != "stopped" {
		t.Fatalf("astrid stop --node n1 = %+v", stopped)
	}
	for i := range 5 {
		resp, err := client.Request(ctx, &bus.Message{Topic: "echo.v1.request", Payload: []byte(`{"i":1}`)})
		if err != nil || bus.EnvelopeNode(resp.Header) != "n2" {
			t.Fatalf("echo request %d with n1's stopped: %v from %q", i, err, bus.EnvelopeNode(resp.Header))
		}
	}
	// Counter runs on n2 only: restarting it everywhere skips n1 (exit 0);
	// a capsule nobody runs is an error.
	restarted := cliJSON[[]json.RawMessage](t, 0, "restart", "counter", "--json", "-s", url)
	if len(restarted) != 2 {
		t.Errorf("astrid restart counter = %s", restarted)
	}
	if code, _ := astridCLI(t, "restart", "nothere", "-s", url); code != 1 {
		t.Errorf("restart of an unknown capsule: exit %d, want 1", code)
	}
	if code, _ := astridCLI(t, "ps", "--node", "n9", "-s", url); code != 1 {
		t.Errorf("ps on an unknown node: exit %d, want 1", code)
	}
	cliJSON[[]supervisor.CapsuleReply](t, 0, "start", "echo", "--json", "-s", url)

	// n2 leaves: nodes reports it gone (from n1's heartbeats), exit 0.
	n2.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := cliJSON[[]row](t, 0, "nodes", "--json", "-s", url)
		if len(rows) == 2 && rows[0].Status == "up" && rows[1].Node == "n2" && rows[1].Status == "gone" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 never reported gone: %+v", rows)
		}
	}
}

// An install hook waiting on elicit is answered through the control
// service (astrid.v1.ctl.elicit.all) instead of the response topic.
func TestIntegrationControlElicitAnswersInstall(t *testing.T) {
	capDir := filepath.Join(t.TempDir(), "setup")
	setupCapsule(t, capDir, "1.0.0", false)
	n := startCtlNode(t, "n1", "", nil)
	client, err := bus.Connect(context.Background(), n.ClientURL(), "test-client", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	answers := map[string]string{"UNITS": "metric", "API_KEY": "via-ctl-123"}
	replies := make(chan error, 8)
	cancel, err := client.SubscribeMessages(supervisor.ElicitTopic, func(m *bus.Message) {
		var em supervisor.ElicitMessage
		if json.Unmarshal(m.Payload, &em) != nil {
			return
		}
		v := answers[em.Field.Key]
		body, _ := json.Marshal(supervisor.ElicitAnswer{RequestID: em.RequestID, Principal: m.Principal, Value: &v})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := client.RequestService(ctx, bus.ControlTopic(supervisor.VerbElicit, bus.ControlAll), body)
		if err == nil && r.Err != nil {
			err = r.Err
		}
		replies <- err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	if err := client.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	rep, err := n.Load(context.Background(), capDir)
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load: %v %v", err, rep.Failed)
	}
	for range 2 {
		if err := <-replies; err != nil {
			t.Fatalf("elicit through the control service: %v", err)
		}
	}
	ctx, cancelReq := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelReq()
	resp, err := client.Request(ctx, &bus.Message{Topic: "setup.v1.show", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var show map[string]any
	if err := json.Unmarshal(resp.Data, &show); err != nil || show["units"] != "metric" || show["api_key_len"] != float64(len("via-ctl-123")) {
		t.Errorf("after install answered through ctl: %s %v", resp.Data, err)
	}
}
