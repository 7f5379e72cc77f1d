package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
)

// Two principals hammering one shared capsule concurrently never see each
// other's KV: every counter reply is the principal's own next value.
func TestIntegrationPrincipalsIsolatedUnderLoad(t *testing.T) {
	n := startNode(t, capsuleDir(t, "examples/counter", ""))
	const per = 60
	principals := []string{"alice", "bob", "carol"}
	var wg sync.WaitGroup
	errs := make(chan string, len(principals)*per)
	for _, p := range principals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= per; i++ {
				out := n.call("counter.v1.increment", `{}`, p)
				if got, _ := out["count"].(float64); int(got) != i {
					errs <- fmt.Sprintf("%s increment %d returned %v", p, i, out["count"])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// The abi guest's kv actions run in the invoking principal's namespace:
// what alice writes, bob cannot read, list or clear.
func TestIntegrationKVNamespacesPerPrincipal(t *testing.T) {
	n := startNode(t, capsuleDir(t, "capsule/testdata/guests/abi", ""))
	if got := n.call("abi.v1.call.kv_set", `{"key":"secret-note","value":"alice-only"}`, "alice"); got["ok"] != true {
		t.Fatal(got)
	}
	if got := n.call("abi.v1.call.kv_get", `{"key":"secret-note"}`, "bob"); got["err"] != "not-found" {
		t.Errorf("bob read alice's key: %v", got)
	}
	if got := n.call("abi.v1.call.kv_list", `{"prefix":""}`, "bob"); fmt.Sprint(got["keys"]) != "[]" {
		t.Errorf("bob lists %v", got["keys"])
	}
	if got := n.call("abi.v1.call.kv_clear", `{"prefix":""}`, "bob"); got["n"] != float64(0) {
		t.Errorf("bob cleared %v keys", got["n"])
	}
	if got := n.call("abi.v1.call.kv_get", `{"key":"secret-note"}`, "alice"); got["value"] != "alice-only" {
		t.Errorf("alice reads %v", got)
	}
}

// Quotas from profile files are answered with the matching error code and
// reported as events.
func TestIntegrationQuotaProfiles(t *testing.T) {
	data := t.TempDir()
	prof := filepath.Join(data, "profiles")
	if err := os.MkdirAll(prof, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(prof, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("default.toml", "[quotas]\nipc_bytes_per_sec = 1000\n")
	write("small.toml", "[quotas]\nkv_storage_bytes = 2000\nipc_bytes_per_sec = 200\n")
	n := startNodeAt(t, data)
	defer n.stop()
	quota := record(t, n.client, "astrid.v1.quota.exceeded")
	if _, err := n.Load(context.Background(), capsuleDir(t, "capsule/testdata/guests/abi", "")); err != nil {
		t.Fatal(err)
	}

	// kv_storage_bytes: 1500 bytes fit, the next 1500 do not.
	big := strings.Repeat("x", 1500)
	if got := n.call("abi.v1.call.kv_set", `{"key":"a","value":"`+big+`"}`, "small"); got["ok"] != true {
		t.Fatalf("first write: %v", got)
	}
	if got := n.call("abi.v1.call.kv_set", `{"key":"b","value":"`+big+`"}`, "small"); got["err"] != "quota" {
		t.Errorf("write past the storage quota: %v, want quota", got)
	}
	// Overwriting the same key does not grow the usage.
	if got := n.call("abi.v1.call.kv_set", `{"key":"a","value":"`+big+`"}`, "small"); got["ok"] != true {
		t.Errorf("rewrite within quota: %v", got)
	}
	// The default profile's principals are unaffected by small's quota.
	if got := n.call("abi.v1.call.kv_set", `{"key":"b","value":"`+big+`"}`, "other"); got["ok"] != true {
		t.Errorf("other principal: %v", got)
	}

	// ipc_bytes_per_sec: small may publish 200 bytes per second.
	payload := `{"topic":"abi.v1.allowed.x","payload":{"p":"` + strings.Repeat("y", 150) + `"}}`
	codes := []any{}
	for range 3 {
		codes = append(codes, n.call("abi.v1.call.publish", payload, "small")["err"])
	}
	if codes[0] != nil || codes[2] != "rate-limited" {
		t.Errorf("publish codes %v, want ok first and rate-limited after", codes)
	}
	ev := quota.WaitFor(t, 5*time.Second, "quota events", func(m bus.Message) bool {
		return strings.Contains(string(m.Payload), "ipc_bytes_per_sec")
	})
	var qe struct{ Principal, Quota string }
	json.Unmarshal(ev.Payload, &qe)
	if qe.Principal != "small" {
		t.Errorf("quota event %s", ev.Payload)
	}
	quota.WaitFor(t, 5*time.Second, "kv quota event", func(m bus.Message) bool {
		return strings.Contains(string(m.Payload), "kv_storage_bytes")
	})
	if v := n.metric("astrid_quota_exceeded_total", "principal", "small", "quota", "kv_storage_bytes"); v < 1 {
		t.Errorf("astrid_quota_exceeded_total{kv_storage_bytes} = %v", v)
	}
	if v := n.metric("astrid_quota_exceeded_total", "principal", "small", "quota", "ipc_bytes_per_sec"); v < 1 {
		t.Errorf("astrid_quota_exceeded_total{ipc_bytes_per_sec} = %v", v)
	}
}

// A capsule whose [env] needs values nobody gave still loads, and the
// node announces what is missing.
func TestIntegrationOnboardingRequired(t *testing.T) {
	n := startNode(t)
	onboarding := record(t, n.client, supervisor.OnboardingTopic)
	// The abi manifest ends in its [env] table: add a key with no default.
	dir := capsuleDir(t, "capsule/testdata/guests/abi", `ENDPOINT = { type = "text", request = "Service endpoint" }`)
	rep, err := n.Load(context.Background(), dir)
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load: %v %v", err, rep.Failed)
	}
	m := onboarding.WaitFor(t, 5*time.Second, "onboarding", func(bus.Message) bool { return true })
	var ob supervisor.Onboarding
	if err := json.Unmarshal(m.Payload, &ob); err != nil {
		t.Fatal(err)
	}
	if ob.CapsuleID != "abi" || len(ob.Fields) != 1 || ob.Fields[0].Key != "ENDPOINT" || ob.Fields[0].Request != "Service endpoint" {
		t.Errorf("onboarding %s", m.Payload)
	}
	// The capsule loaded anyway; the key reads as not-found until set.
	if got := n.call("abi.v1.call.config", `{"key":"ENDPOINT"}`, ""); got["found"] != false {
		t.Errorf("config ENDPOINT: %v", got)
	}
}

// A secret given to the node (here through a config answer to the install
// hook's elicit) is usable by the capsule through get-config but appears
// nowhere except the 0600 store file: not in NATS traffic (a subscriber on
// ">"), not in the node's logs, not elsewhere in the data dir.
func TestIntegrationSecretNeverLeaks(t *testing.T) {
	const secret = "sk-never-leak-9731"
	data := t.TempDir()
	var logs syncBuffer
	n, err := supervisor.Start(context.Background(), supervisor.Config{
		DataDir: data, NATSListen: "127.0.0.1:-1", NodeID: "test", CacheDir: cacheDir,
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel),
		File:   &supervisor.FileConfig{Answers: map[string]map[string]any{"setup": {"UNITS": "metric", "API_KEY": secret}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	raw, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var mu sync.Mutex
	var traffic []byte
	if _, err := raw.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		traffic = append(traffic, m.Subject...)
		traffic = append(traffic, m.Data...)
		for k, v := range m.Header {
			traffic = append(traffic, k...)
			traffic = append(traffic, strings.Join(v, ",")...)
		}
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	raw.Flush()
	dir := filepath.Join(t.TempDir(), "setup")
	setupCapsule(t, dir, "1.0.0", false)
	if rep, err := n.Load(context.Background(), dir); err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load: %v %v", err, rep)
	}
	resp, err := raw.Request("setup.v1.show", []byte(`{}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var show struct {
		HasSecret bool `json:"has_secret"`
		Len       int  `json:"api_key_len"`
	}
	json.Unmarshal(resp.Data, &show)
	if !show.HasSecret || show.Len != len(secret) {
		t.Fatalf("capsule cannot use the secret: %s", resp.Data)
	}
	raw.Flush()
	mu.Lock()
	leaked := strings.Contains(string(traffic), secret)
	mu.Unlock()
	if leaked {
		t.Error("the secret crossed NATS")
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the secret is in the node log")
	}
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), secret) && !strings.HasSuffix(p, filepath.Join("secrets", "default", "setup", "API_KEY")) {
			t.Errorf("the secret is in %s", p)
		}
		return nil
	})
}

// syncBuffer is a goroutine-safe bytes.Buffer for capturing logs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Guest logs go to the invoking principal's own daily file for the
// capsule; principals without a profile are not provisioned a directory.
func TestIntegrationLogsPerPrincipal(t *testing.T) {
	data := t.TempDir()
	prof := filepath.Join(data, "profiles")
	os.MkdirAll(prof, 0o755)
	for _, p := range []string{"alice", "bob"} {
		os.WriteFile(filepath.Join(prof, p+".toml"), []byte("[quotas]\n"), 0o644)
	}
	n := startNodeAt(t, data)
	if _, err := n.Load(context.Background(), capsuleDir(t, "capsule/testdata/guests/abi", "")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, p := range []string{"alice", "bob", "carol"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				n.call("abi.v1.call.log", fmt.Sprintf(`{"level":2,"msg":"%s-line-%d"}`, p, i), p)
			}
		}()
	}
	wg.Wait()
	n.stop() // flushes the log files
	day := time.Now().UTC().Format("2006-01-02")
	read := func(principal string) string {
		b, err := os.ReadFile(filepath.Join(data, "logs", principal, "abi", day+".log"))
		if err != nil {
			t.Fatalf("%s log: %v", principal, err)
		}
		return string(b)
	}
	for _, p := range []string{"alice", "bob"} {
		log := read(p)
		if c := strings.Count(log, p+"-line-"); c != 20 {
			t.Errorf("%s's log has %d of its 20 lines", p, c)
		}
		for _, other := range []string{"alice", "bob", "carol"} {
			if other != p && strings.Contains(log, other+"-line-") {
				t.Errorf("%s's log contains %s's lines", p, other)
			}
		}
		if !strings.Contains(log, " INFO [abi] "+p+"-line-0\n") {
			t.Errorf("%s's log format: %q", p, log[:min(len(log), 200)])
		}
	}
	if _, err := os.Stat(filepath.Join(data, "logs", "carol")); !os.IsNotExist(err) {
		t.Errorf("an unprovisioned principal got a log directory: %v", err)
	}
	if un := read("@unprovisioned"); strings.Count(un, "(principal=carol) carol-line-") != 20 {
		t.Errorf("unprovisioned log: %q", un[:min(len(un), 200)])
	}
}
