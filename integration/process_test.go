package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/capsule/capsuletest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// astridBinary builds cmd/astrid once per test binary.
func astridBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "astrid-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "astrid")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/astrid")
		cmd.Dir = capsuletest.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// nodeProcess is `astrid run` in its own process.
type nodeProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// startProcess runs the node and waits for its "capsules loaded" log line.
func startProcess(t *testing.T, data string, port int, dirs ...string) *nodeProcess {
	t.Helper()
	args := append([]string{"run", "--data", data, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port), "--node-id", "proc"}, dirs...)
	cmd := exec.Command(astridBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProcess{cmd: cmd, url: fmt.Sprintf("nats://127.0.0.1:%d", port), done: make(chan error, 1)}
	loaded := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `"message":"capsules loaded"`) {
				once.Do(func() { close(loaded) })
			}
			if testing.Verbose() {
				t.Log(line)
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case <-loaded:
	case err := <-p.done:
		t.Fatalf("node exited before loading: %v", err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("node did not load its capsules within 60s")
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return p
}

func (p *nodeProcess) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("node did not die")
	}
}

func (p *nodeProcess) increment(t *testing.T, principal string) int {
	t.Helper()
	c, err := bus.Connect(context.Background(), p.url, "test", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Request(ctx, &bus.Message{Topic: "counter.v1.increment", Payload: []byte(`{}`), Principal: principal})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Count int }
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		t.Fatalf("%s: %v", resp.Data, err)
	}
	return out.Count
}

// KV state survives kill -9 of the node process: JetStream keeps it under
// the data dir, and the restarted node (compiling nothing: the cache is on
// disk) continues every principal's count.
func TestIntegrationStateSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	data := t.TempDir()
	dir := capsuleDir(t, "examples/counter", "")
	port := freePort(t)

	p := startProcess(t, data, port, dir)
	for i := 1; i <= 3; i++ {
		if got := p.increment(t, "alice"); got != i {
			t.Fatalf("alice increment %d: %d", i, got)
		}
	}
	if got := p.increment(t, "bob"); got != 1 {
		t.Fatalf("bob: %d", got)
	}
	p.kill9(t)

	p = startProcess(t, data, port, dir)
	if got := p.increment(t, "alice"); got != 4 {
		t.Errorf("alice after kill -9: %d, want 4", got)
	}
	if got := p.increment(t, "bob"); got != 2 {
		t.Errorf("bob after kill -9: %d, want 2", got)
	}
	ents, _ := os.ReadDir(filepath.Join(data, "cache", "wazero"))
	if len(ents) == 0 {
		t.Error("no compilation cache on disk")
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("clean shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("node did not stop on SIGINT")
	}
}
