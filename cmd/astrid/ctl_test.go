package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/supervisor"
)

// ctlNode starts a node on a random loopback port with the given example
// capsules and returns its NATS URL.
func ctlNode(t *testing.T, id string, examples ...string) (*supervisor.Node, string) {
	t.Helper()
	var dirs []string
	for _, e := range examples {
		dirs = append(dirs, capsuletest.CapsuleDir(t, "examples/"+e, e+".wasm"))
	}
	n, err := supervisor.Start(context.Background(), supervisor.Config{DataDir: t.TempDir(), NodeID: id,
		NATSListen: "127.0.0.1:-1", Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	if rep, err := n.Load(context.Background(), dirs...); err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load: %+v %v", rep, err)
	}
	return n, n.ClientURL()
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return v
}

func TestCLIControlHelp(t *testing.T) {
	for _, cmd := range []string{"nodes", "ps", "start", "stop", "restart", "upgrade", "deploy"} {
		code, out, _ := runCLI(t, cmd, "--help")
		if code != ExitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--json") {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, out)
		}
	}
	for _, args := range [][]string{{"stop"}, {"start", "a", "b"}, {"upgrade"}, {"deploy", "--label", "zone", "x"}, {"ps", "extra"}} {
		if code, _, _ := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
	if code, _, errOut := runCLI(t, "ps", "-s", "nats://127.0.0.1:1", "--timeout", "500ms"); code != ExitFailure || errOut == "" {
		t.Errorf("ps without a server: exit %d %q", code, errOut)
	}
}

func TestCLIControl(t *testing.T) {
	n, url := ctlNode(t, "cli1", "echo", "ticker")
	s := []string{"-s", url}

	// ps: table and JSON.
	code, out, errOut := runCLI(t, append([]string{"ps"}, s...)...)
	if code != ExitOK || !strings.Contains(out, "NODE") || !strings.Contains(out, "LAST FAILURE") {
		t.Fatalf("ps: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"cli1  echo     0.1.0    ready  0", "cli1  ticker   0.1.0    ready  0"} {
		if !strings.Contains(out, want) {
			t.Errorf("ps table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, append([]string{"ps", "--json", "--node", "cli1"}, s...)...)
	ps := decodeJSON[[]supervisor.PsReply](t, out)
	if code != ExitOK || len(ps) != 1 || len(ps[0].Capsules) != 2 || !ps[0].Capsules[1].RunLoop {
		t.Fatalf("ps --json: exit %d %+v", code, ps)
	}

	// nodes.
	code, out, _ = runCLI(t, append([]string{"nodes", "--json"}, s...)...)
	rows := decodeJSON[[]nodeRow](t, out)
	if code != ExitOK || len(rows) != 1 || rows[0].Node != "cli1" || rows[0].Status != "up" || rows[0].Ready != 2 || rows[0].NATSURL != url {
		t.Fatalf("nodes --json: exit %d %+v", code, rows)
	}
	if code, out, _ = runCLI(t, append([]string{"nodes"}, s...)...); code != ExitOK || !strings.Contains(out, "2/2 ready") {
		t.Errorf("nodes: exit %d\n%s", code, out)
	}

	// stop, start, restart.
	for _, tc := range []struct {
		verb, state, result string
		restarts            int
	}{
		{"stop", "stopped", "stopped", 0},
		{"stop", "stopped", "unchanged", 0},
		{"start", "ready", "started", 0},
		{"restart", "ready", "restarted", 1},
	} {
		code, out, errOut := runCLI(t, append([]string{tc.verb, "ticker"}, s...)...)
		want := "cli1  ticker   0.1.0    " + tc.state
		if code != ExitOK || !strings.Contains(out, want) || !strings.Contains(out, tc.result) {
			t.Errorf("%s ticker: exit %d, want %q and %q in\n%s%s", tc.verb, code, want, tc.result, out, errOut)
		}
	}
	code, out, _ = runCLI(t, append([]string{"restart", "ticker", "--json"}, s...)...)
	rs := decodeJSON[[]supervisor.CapsuleReply](t, out)
	if code != ExitOK || len(rs) != 1 || rs[0].Capsule.Restarts != 2 || !rs[0].Changed {
		t.Errorf("restart --json: exit %d %+v", code, rs)
	}
	// Errors: an unknown capsule on the one node asked, a restart of a
	// stopped capsule.
	code, out, errOut = runCLI(t, append([]string{"stop", "nothere", "--node", "cli1", "--json"}, s...)...)
	errs := decodeJSON[[]supervisor.ControlError](t, out)
	if code != ExitFailure || len(errs) != 1 || errs[0].Code != supervisor.CodeNotFound {
		t.Errorf("stop nothere: exit %d %+v %s", code, errs, errOut)
	}
	runCLI(t, append([]string{"stop", "echo"}, s...)...)
	if code, _, errOut := runCLI(t, append([]string{"restart", "echo"}, s...)...); code != ExitFailure || !strings.Contains(errOut, "409") {
		t.Errorf("restart of a stopped capsule: exit %d %s", code, errOut)
	}
	runCLI(t, append([]string{"start", "echo"}, s...)...)

	// upgrade from a directory with a new version.
	up := capsuletest.CapsuleDir(t, "examples/echo", "echo.wasm")
	manifest := filepath.Join(up, "Capsule.toml")
	b, _ := os.ReadFile(manifest)
	if err := os.WriteFile(manifest, bytes.Replace(b, []byte(`version = "0.1.0"`), []byte(`version = "0.2.0"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, append([]string{"upgrade", up, "--json"}, s...)...)
	ups := decodeJSON[[]supervisor.UpgradeReply](t, out)
	if code != ExitOK || len(ups) != 1 || len(ups[0].Upgraded) != 1 || ups[0].Upgraded[0] != "echo" {
		t.Fatalf("upgrade: exit %d %+v %s", code, ups, errOut)
	}
	infos, _ := n.Capsules(time.Second)
	if infos[0].ID != "echo" || infos[0].Version != "0.2.0" {
		t.Errorf("after upgrade: %+v", infos)
	}

	// deploy a capsule the node does not run; a selector nobody matches.
	counter := capsuletest.CapsuleDir(t, "examples/counter", "counter.wasm")
	code, out, errOut = runCLI(t, append([]string{"deploy", counter, "--json"}, s...)...)
	ds := decodeJSON[[]supervisor.DeployReply](t, out)
	if code != ExitOK || len(ds) != 1 || ds[0].Action != "loaded" || ds[0].Capsule != "counter" {
		t.Fatalf("deploy: exit %d %+v %s", code, ds, errOut)
	}
	if code, out, _ := runCLI(t, append([]string{"deploy", counter}, s...)...); code != ExitOK || !strings.Contains(out, "unchanged") {
		t.Errorf("redeploy: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, append([]string{"deploy", counter, "--label", "zone=x"}, s...)...); code != ExitFailure || !strings.Contains(errOut, "no node matches zone=x") {
		t.Errorf("deploy to nobody: exit %d %s", code, errOut)
	}
}
