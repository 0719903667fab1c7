package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// paddockBin is the paddock binary built for these tests: they run it as a
// user would, as a separate process, and signal it for real.
var paddockBin string

// patience bounds every wait of these tests for something that must
// happen: only a failure makes a wait that long, however slow or loaded the
// machine. No test asserts on elapsed time.
const patience = testkit.Patience

func TestMain(m *testing.M) {
	// The test binary doubles as a worker program (survivors_test.go).
	if mode := os.Getenv("PADDOCK_TEST_HELPER"); mode != "" {
		helper(mode)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "paddock-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	paddockBin = filepath.Join(dir, "paddock")
	// No test may touch the user's own control socket; tests that run
	// paddock themselves give each its own (startPaddockCmd).
	os.Setenv("PADDOCK_SOCKET", filepath.Join(dir, "default.sock"))
	build := exec.Command("go", "build", "-race", "-o", paddockBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building paddock:", err)
		os.Exit(1)
	}
	testkit.ParseFlags(testkit.DefaultParallel)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCommand runs cmd to its end and returns its stdout, stderr and exit
// code.
func runCommand(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func writeManifest(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "paddock.yaml")
	if err := testkit.WriteFile(p, []byte(strings.ReplaceAll(content, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// running is a paddock process under test, with its JSON log parsed.
type running struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	// other holds the stderr lines that are not JSON log records (usage
	// errors, a race detector report).
	other []string
	done  chan struct{}
	err   error
}

func startPaddock(t *testing.T, manifest string, extra ...*os.File) *running {
	t.Helper()
	return startPaddockCmd(t, exec.Command(paddockBin, "run", "--log-format", "json", manifest), extra...)
}

func startPaddockArgs(t *testing.T, args ...string) *running {
	t.Helper()
	return startPaddockCmd(t, exec.Command(paddockBin, args...))
}

func startPaddockCmd(t *testing.T, cmd *exec.Cmd, extra ...*os.File) *running {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = append(os.Environ(), "PADDOCK_SOCKET="+socketPath(t))
	}
	cmd.ExtraFiles = extra
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			r.mu.Lock()
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				r.logs = append(r.logs, m)
			} else {
				r.other = append(r.other, sc.Text())
			}
			r.mu.Unlock()
		}
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
	})
	return r
}

// workerPIDs waits until n fork events were logged and returns their pids.
func (r *running) workerPIDs(n int) []int {
	r.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		var pids []int
		r.mu.Lock()
		for _, m := range r.logs {
			if m["msg"] == "fork" {
				pids = append(pids, int(m["pid"].(float64)))
			}
		}
		r.mu.Unlock()
		if len(pids) >= n {
			return pids
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d forks logged, want %d", len(pids), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for paddock to exit and returns its exit code.
func (r *running) wait() int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(patience):
		r.t.Fatal("paddock did not exit")
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		if len(r.other) > 0 {
			r.t.Logf("paddock exited %d; its stderr beside the log records:\n%s", ee.ExitCode(), strings.Join(r.other, "\n"))
		}
		return ee.ExitCode()
	}
	if r.err != nil {
		r.t.Fatal(r.err)
	}
	return 0
}

// dead reports whether pid is gone or a zombie.
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !dead(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// selfPath is the absolute path of the test binary, for `exec:` in
// manifests of workers that run a helper mode.
func selfPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *running) logged(msg string) bool { return r.index(msg) >= 0 }

// index returns the position of the first log record with msg, or -1.
func (r *running) index(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.logs {
		if m["msg"] == msg {
			return i
		}
	}
	return -1
}

// logValue returns the value of key in the first log record with msg, and
// whether there is one.
func (r *running) logValue(msg, key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.logs {
		if m["msg"] == msg {
			v, ok := m[key].(string)
			return v, ok
		}
	}
	return "", false
}

// find returns the first log record that match accepts, or nil.
func (r *running) find(match func(map[string]any) bool) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.logs {
		if match(m) {
			return m
		}
	}
	return nil
}
