package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule/capsuletest"
	"github.com/astrid-go/astrid/supervisor"
)

// setupCapsule writes the setup guest as capsule "setup" at version.
func setupCapsule(t *testing.T, dir, version string, failUpgrade bool) {
	t.Helper()
	_, wasm := capsuletest.Build(t, "integration/testdata/guests/setup")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fail := "no"
	if failUpgrade {
		fail = "yes"
	}
	manifest := fmt.Sprintf(`[package]
name = "setup"
version = %q

[[component]]
id = "setup"
file = "setup.wasm"

[subscribe]
"setup.v1.show" = { wit = "opaque", handler = "show" }
"setup.v1.elicit" = { wit = "opaque", handler = "elicit" }

[env]
API_KEY = { type = "secret", request = "API key" }
fail_upgrade = { type = "text", default = %q }
`, version, fail)
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "setup.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startNodeAt starts a node on dataDir without loading anything.
func startNodeAt(t *testing.T, dataDir string) *node {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	n, err := supervisor.Start(context.Background(), supervisor.Config{
		DataDir: dataDir, NATSListen: "127.0.0.1:-1", NodeID: "test", Logger: log, CacheDir: cacheDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := bus.Connect(context.Background(), n.ClientURL(), "test-client", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{Node: n, t: t, client: c, events: record(t, c, "astrid.v1.capsule.*")}
	return nd
}

func (n *node) stop() {
	n.t.Helper()
	n.client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		n.t.Fatalf("shutdown: %v", err)
	}
}

// answer answers elicit requests for principal "default" like `astrid
// elicit --answer` does, until ctx ends.
func answer(t *testing.T, c *bus.Conn, answers map[string]string, seen chan<- string) {
	t.Helper()
	cancel, err := c.SubscribeMessages(supervisor.ElicitTopic, func(m *bus.Message) {
		var em supervisor.ElicitMessage
		if json.Unmarshal(m.Payload, &em) != nil {
			return
		}
		v := answers[em.Field.Key]
		body, _ := json.Marshal(supervisor.ElicitResponse{RequestID: em.RequestID, Value: &v})
		_ = c.Publish(&bus.Message{Topic: supervisor.ElicitTopic + ".response." + em.RequestID, Payload: body, Principal: "default"})
		seen <- em.Field.Key + ":" + em.Field.Kind
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	if err := c.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationInstallUpgradeLifecycle(t *testing.T) {
	data := t.TempDir()
	capDir := filepath.Join(t.TempDir(), "setup")

	// First load: the install hook elicits a select and a secret.
	setupCapsule(t, capDir, "1.0.0", false)
	n := startNodeAt(t, data)
	seen := make(chan string, 8)
	answer(t, n.client, map[string]string{"UNITS": "imperial", "API_KEY": "s3cr3t-value"}, seen)
	rep, err := n.Load(context.Background(), capDir)
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load: %v %v", err, rep.Failed)
	}
	if got := []string{<-seen, <-seen}; got[0] != "UNITS:select" || got[1] != "API_KEY:secret" {
		t.Fatalf("elicit requests %v", got)
	}
	n.event("setup", "installed", 5*time.Second)
	show := n.call("setup.v1.show", `{}`, "")
	if show["units"] != "imperial" || show["installed"] != "yes" || show["has_secret"] != true || show["api_key_len"] != float64(len("s3cr3t-value")) {
		t.Fatalf("after install: %v", show)
	}
	// elicit outside install/upgrade is refused.
	if got := n.call("setup.v1.elicit", `{}`, ""); got["err"] != "not-in-lifecycle" {
		t.Errorf("elicit at runtime: %v, want not-in-lifecycle", got)
	}
	n.stop()

	// The secret lives only in the store, in a 0600 file.
	var found []string
	filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "s3cr3t-value") {
			found = append(found, p)
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s holds the secret with mode %v", p, fi.Mode().Perm())
			}
		}
		return nil
	})
	if len(found) != 1 || !strings.Contains(found[0], filepath.Join("secrets", "default", "setup", "API_KEY")) {
		t.Errorf("secret found in %v, want only the secret store file", found)
	}

	// Same version again: no hook runs.
	n = startNodeAt(t, data)
	if _, err := n.Load(context.Background(), capDir); err != nil {
		t.Fatal(err)
	}
	n.okReply("setup.v1.show", "imperial")
	if n.countEvents("setup", "installed")+n.countEvents("setup", "upgraded") != 0 {
		t.Error("a hook ran for an unchanged capsule")
	}
	n.stop()

	// A new version runs the upgrade hook with the previous version.
	setupCapsule(t, capDir, "1.1.0", false)
	n = startNodeAt(t, data)
	if _, err := n.Load(context.Background(), capDir); err != nil {
		t.Fatal(err)
	}
	if ev := n.event("setup", "upgraded", 5*time.Second); ev.Previous != "1.0.0" || ev.Version != "1.1.0" {
		t.Errorf("upgraded event %+v", ev)
	}
	if show := n.call("setup.v1.show", `{}`, ""); show["upgraded_from"] != "1.0.0" {
		t.Errorf("after upgrade: %v", show)
	}
	n.stop()

	// A failing upgrade hook leaves the recorded version running.
	setupCapsule(t, capDir, "1.2.0", true)
	n = startNodeAt(t, data)
	defer n.stop()
	rep, err = n.Load(context.Background(), capDir)
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load after failed upgrade: %v %v", err, rep.Failed)
	}
	if ev := n.event("setup", "failed", 5*time.Second); ev.Kind != "upgrade-hook" {
		t.Errorf("failed event %+v", ev)
	}
	infos, err := n.Capsules(time.Second)
	if err != nil || len(infos) != 1 || infos[0].Version != "1.1.0" {
		t.Errorf("capsules after failed upgrade: %+v %v, want 1.1.0 running", infos, err)
	}
	n.okReply("setup.v1.show", "imperial")
}

// A hot upgrade under load: every request is answered exactly once, first
// by the old version and then by the new one, with no error in between.
func TestIntegrationHotUpgradeWithoutLoss(t *testing.T) {
	dir := capsuleDir(t, "capsule/testdata/guests/abi", "")
	manifest := filepath.Join(dir, "Capsule.toml")
	orig, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	write := func(version, greeting string) {
		s := strings.Replace(string(orig), `version = "0.1.0"`, fmt.Sprintf("version = %q", version), 1)
		s = strings.Replace(s, `default = "hello"`, fmt.Sprintf("default = %q", greeting), 1)
		if err := os.WriteFile(manifest, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1.0.0", "v1")
	n := startNode(t, dir)

	const clients = 3
	type reply struct {
		client, seq int
		value       string
		err         string
	}
	results := make(chan reply, 100000)
	stop := make(chan struct{})
	sawV2 := make(chan struct{}, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reported := false
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := n.client.Request(ctx, &bus.Message{Topic: "abi.v1.call.config", Payload: []byte(`{"key":"greeting"}`)})
				cancel()
				r := reply{client: c, seq: seq}
				switch {
				case err != nil:
					r.err = err.Error()
				case resp.Header.Get(bus.HeaderError) != "":
					r.err = resp.Header.Get(bus.HeaderError)
				default:
					var out struct{ Value string }
					json.Unmarshal(resp.Data, &out)
					r.value = out.Value
				}
				results <- r
				if r.value == "v2" && !reported {
					reported = true
					sawV2 <- struct{}{}
				}
			}
		}()
	}
	// Let traffic flow on v1, then upgrade.
	deadline := time.After(20 * time.Second)
	for len(results) < 30 {
		select {
		case <-deadline:
			t.Fatal("no traffic")
		case <-time.After(10 * time.Millisecond):
		}
	}
	write("1.1.0", "v2")
	rr, err := n.Reload(context.Background())
	if err != nil || len(rr.Failed) > 0 || len(rr.Upgraded) != 1 {
		t.Fatalf("reload: %+v %v", rr, err)
	}
	for range clients {
		select {
		case <-sawV2:
		case <-deadline:
			t.Fatal("clients never saw the new version")
		}
	}
	close(stop)
	wg.Wait()
	close(results)
	last := map[int]string{}
	count := 0
	for r := range results {
		count++
		if r.err != "" {
			t.Errorf("client %d request %d: %s", r.client, r.seq, r.err)
			continue
		}
		if last[r.client] == "v2" && r.value == "v1" {
			t.Errorf("client %d request %d answered by v1 after v2", r.client, r.seq)
		}
		last[r.client] = r.value
	}
	t.Logf("%d requests across the upgrade", count)
	if ev := n.event("abi", "upgraded", 5*time.Second); ev.Previous != "1.0.0" || ev.Version != "1.1.0" {
		t.Errorf("upgraded event %+v", ev)
	}
	infos, _ := n.Capsules(time.Second)
	if len(infos) != 1 || infos[0].Version != "1.1.0" || infos[0].State != "ready" {
		t.Errorf("capsules %+v", infos)
	}
}
