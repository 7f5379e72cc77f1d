package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIHelpAndUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"validate", "--help"}, {"run", "--help"}, {"secret", "set", "--help"}, {"elicit", "--help"}} {
		if code, out, _ := runCLI(t, args...); code != ExitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
	if code, _, errOut := runCLI(t, "validate"); code != ExitUsage || !strings.Contains(errOut, "astrid --help") {
		t.Errorf("validate without args: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != ExitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestCLIValidate(t *testing.T) {
	dir := t.TempDir()
	bad := "[package]\nname = \"Bad\"\nversion = \"1.0.0\"\n\n[subscribe]\n\"a.b\" = { wit = \"opaque\", priority = 3 }\n"
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "validate", dir)
	if code != ExitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	file := filepath.Join(dir, "Capsule.toml")
	for _, want := range []string{
		file + ":2:1: package.name: invalid capsule id",
		file + ":6:27: subscribe.\"a.b\".priority: priority requires handler",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "validate", "--json", dir)
	if code != ExitFailure || !strings.Contains(out, `"valid": false`) || !strings.Contains(out, `"path": "package.name"`) {
		t.Errorf("--json: exit %d\n%s", code, out)
	}
	ref := filepath.Join("..", "..", "..", "shared", "reference", "manifests")
	if _, err := os.Stat(ref); err == nil {
		if code, _, errOut := runCLI(t, "validate", "-q", ref); code != ExitOK {
			t.Errorf("reference corpus: exit %d: %s", code, errOut)
		}
	}
}

func TestCLISecretRoundTrip(t *testing.T) {
	data := t.TempDir()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"secret", "set", "--data", data, "--principal", "alice", "weather", "API_KEY"},
		strings.NewReader("sk-123\n"), &out, &errb)
	if code != ExitOK {
		t.Fatalf("set: exit %d: %s", code, errb.String())
	}
	p := filepath.Join(data, "secrets", "alice", "weather", "API_KEY")
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file %v %v", fi, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "sk-123" {
		t.Errorf("stored %q", b)
	}
	if code, out, _ := runCLI(t, "secret", "list", "--data", data, "--principal", "alice", "weather"); code != ExitOK || strings.TrimSpace(out) != "API_KEY" {
		t.Errorf("list: %d %q", code, out)
	}
	if strings.Contains(out.String()+errb.String(), "sk-123") {
		t.Error("the secret was echoed")
	}
	if code, _, _ := runCLI(t, "secret", "delete", "--data", data, "--principal", "alice", "weather", "API_KEY"); code != ExitOK {
		t.Errorf("delete: %d", code)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("secret still there: %v", err)
	}
}
