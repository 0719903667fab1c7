package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
const patience = 60 * time.Second

// defaultParallel is how many of these tests run at once unless -parallel
// says otherwise. They spend most of their time waiting for paddock and
// its workers (signals, restarts, rollouts) rather than computing, so more
// of them than GOMAXPROCS, go test's default, fit on a small machine. Each
// has its own manifests, control socket, ports and processes.
const defaultParallel = 4

// flagSet reports whether the flag name was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

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
	flag.Parse()
	if !flagSet("test.parallel") {
		flag.Set("test.parallel", strconv.Itoa(defaultParallel))
	}
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
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 3
  api:
    exec: /bin/sleep
    args: [3600]
`)
	bad := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    instances: -2
    restart: sometimes
`)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{"valid", []string{"validate", good}, 0, "ok: 2 apps, 4 workers\n", nil},
		{"invalid", []string{"validate", bad}, 1, "", []string{
			bad + ":5:16: apps.web.instances: must be an integer >= 0 or \"auto\", got -2",
			bad + ":6:14: apps.web.restart: must be one of always, on-failure, never, got \"sometimes\"",
		}},
		{"missing path", []string{"validate", "/nonexistent/paddock.yaml"}, 2, "", []string{"/nonexistent/paddock.yaml"}},
		{"bad flag", []string{"validate", "--frobnicate", good}, 2, "", []string{"flag provided but not defined"}},
		{"unknown command", []string{"frobnicate"}, 2, "", []string{"unknown command"}},
		{"help", []string{"validate", "--help"}, 0, "", []string{"Usage: paddock validate"}},
		{"version", []string{"version"}, 0, "paddock ", nil},
		{"run with invalid manifest starts nothing", []string{"run", bad}, 1, "", []string{"apps.web.instances"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runCommand(t, exec.Command(paddockBin, tt.args...))
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.HasPrefix(stdout, tt.wantStdout) || (tt.wantStdout == "" && len(stdout) > 0 && tt.name != "help") {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if tt.name == "run with invalid manifest starts nothing" && strings.Contains(stderr, "fork") {
				t.Errorf("a worker was started:\n%s", stderr)
			}
		})
	}
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

func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			r := startPaddock(t, writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 3
`))
			pids := r.workerPIDs(3)
			if err := r.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			for _, pid := range pids {
				waitDead(t, pid)
			}
		})
	}
}

// startStubborn runs paddock with one worker that ignores SIGTERM, and
// returns once the worker ignores it: the test binary as helper stubborn,
// which creates $READY when it does.
func startStubborn(t *testing.T, killTimeout string) (*running, int) {
	t.Helper()
	manifest := writeManifest(t, fmt.Sprintf(`
apps:
  stubborn:
    exec: %s
    env: {PADDOCK_TEST_HELPER: stubborn, READY: $DIR/ignoring}
    killTimeout: %s
`, selfPath(t), killTimeout))
	r := startPaddock(t, manifest)
	pids := r.workerPIDs(1)
	testkit.WaitFor(t, "the worker to ignore SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(filepath.Dir(manifest), "ignoring"))
		return err == nil
	})
	return r, pids[0]
}

func TestStopTimeoutExitsOne(t *testing.T) {
	t.Parallel()
	r, pid := startStubborn(t, "300ms")
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d, want 1 (a worker needed SIGKILL)", code)
	}
	waitDead(t, pid)
}

func TestSecondSignalKillsAtOnce(t *testing.T) {
	t.Parallel()
	r, pid := startStubborn(t, "1h")
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Wait for the graceful stop to begin, then insist.
	testkit.WaitFor(t, "the stopping event", func() bool { return r.logged("stopping") })
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	waitDead(t, pid)
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

func TestSIGKILLOfSupervisorLeavesNoWorker(t *testing.T) {
	t.Parallel()
	r := startPaddock(t, writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 3
`))
	pids := r.workerPIDs(3)
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r.wait()
	for _, pid := range pids {
		waitDead(t, pid)
	}
}

func TestInheritedDescriptorDoesNotReachWorkers(t *testing.T) {
	t.Parallel()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// paddock gets f as its descriptor 3, without close-on-exec.
	r := startPaddock(t, writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 2
    silent: true
`), f)
	if fds, err := testkit.OpenFDs(r.cmd.Process.Pid); err != nil || !slices.Contains(fds, 3) {
		t.Fatalf("paddock did not inherit descriptor 3: %v %v", fds, err)
	}
	for _, pid := range r.workerPIDs(2) {
		// The dynamic loader holds a descriptor for a moment while sleep
		// starts; a leaked one stays.
		testkit.WaitFDs(t, pid, []int{0, 1, 2})
	}
}

// TestAsPID1 runs paddock as PID 1 of a new PID namespace, as in a
// container: it must handle SIGTERM (PID 1 has no default signal actions)
// and reap the orphans that workers leave. Once as root, once in a user
// namespace of its own, as a rootless container runs it: as nobody when
// the test runs as root, as the test's user otherwise.
func TestAsPID1(t *testing.T) {
	t.Parallel()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1) to create a PID namespace")
	}
	const leavers = `
apps:
  leaver:
    exec: /bin/sh
    # Leaves a background child behind in a new session (so that the
    # worker's process group kill does not reach it) and exits at once.
    args: ["-c", "setsid sleep 0.3 & exit 0"]
    restart: never
    instances: 3
`
	t.Run("root", func(t *testing.T) {
		t.Parallel()
		testkit.NeedRoot(t, "to create a PID namespace without a user namespace")
		manifest := writeManifest(t, leavers)
		testAsPID1(t, exec.Command(unshare, "--pid", "--fork", "--kill-child", paddockBin, "run", manifest))
	})
	t.Run("user namespace", func(t *testing.T) {
		t.Parallel()
		manifest := writeManifest(t, leavers)
		sock := unprivilegedDirs(t, manifest)
		testAsPID1(t, unprivileged(t, unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
			paddockBin, "run", "--socket", sock, manifest))
	})
}

// unprivilegedDirs makes paddockBin and manifest reachable by nobody when
// the test runs as root, and returns a control socket path in a directory
// of the user that unprivileged runs as.
func unprivilegedDirs(t *testing.T, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return filepath.Join(dir, "control.sock")
	}
	for _, d := range []string{filepath.Dir(paddockBin), filepath.Dir(manifest), filepath.Dir(filepath.Dir(manifest)), filepath.Dir(dir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "control.sock")
}

// unprivileged returns the command unshare args, run by a user that is not
// root: nobody when the test runs as root, the test's user otherwise. It
// skips the test when that user may not create a user namespace here.
func unprivileged(t *testing.T, unshare string, args ...string) *exec.Cmd {
	t.Helper()
	as := func(args ...string) *exec.Cmd {
		cmd := exec.Command(unshare, args...)
		if os.Geteuid() == 0 {
			testkit.AsUser(cmd, testkit.Nobody)
		}
		return cmd
	}
	if out, err := as("--user", "--map-root-user", "true").CombinedOutput(); err != nil {
		t.Skipf("uid %d may not create a user namespace here: %v\n%s", unprivilegedUID(), err, out)
	}
	t.Logf("paddock runs as uid %d, root of a user namespace of its own", unprivilegedUID())
	return as(args...)
}

// unprivilegedUID is the user that unprivileged runs commands as.
func unprivilegedUID() int {
	if os.Geteuid() == 0 {
		return 65534
	}
	return os.Geteuid()
}

// testAsPID1 starts cmd, which runs paddock as PID 1 of a new PID namespace
// (forked by unshare) over the manifest of TestAsPID1, and checks it.
func testAsPID1(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	stderr := &testkit.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// unshare forks paddock as its only child.
	var pid1 int
	deadline := time.Now().Add(patience)
	for pid1 == 0 {
		pid1 = childOf(cmd.Process.Pid)
		if pid1 == 0 && time.Now().After(deadline) {
			t.Fatalf("paddock did not start:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Wait until the workers exited: their orphans are paddock's children
	// from then on (a process is re-parented before its parent can be
	// reaped).
	for strings.Count(stderr.String(), "not restarted") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("workers did not finish:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "running as PID 1") {
		t.Errorf("paddock did not say it runs as PID 1:\n%s", stderr.String())
	}
	// It runs as the user cmd says (seen from here, outside any user
	// namespace).
	wantUID := os.Geteuid()
	if a := cmd.SysProcAttr; a != nil && a.Credential != nil {
		wantUID = int(a.Credential.Uid)
	}
	if uid := statusField(t, pid1, "Uid:"); uid != strconv.Itoa(wantUID) {
		t.Errorf("paddock runs as uid %s, want %d", uid, wantUID)
	}
	// The orphans live and die; paddock must reap them: it ends up with no
	// child at all (as PID 1 it has no watchdog), while a zombie it failed
	// to reap would stay.
	deadline = time.Now().Add(patience)
	for len(children(pid1)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("children left under paddock as PID 1: %v, zombies among them: %v", children(pid1), zombieChildren(pid1))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("paddock as PID 1 exited with %v after SIGTERM:\n%s", err, stderr.String())
		}
	case <-time.After(patience):
		t.Fatal("paddock as PID 1 ignored SIGTERM")
	}
}

// statusField returns the first value of the line of /proc/pid/status
// that starts with name ("Uid:" gives the real uid).
func statusField(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return ""
}

// childOf returns one child of pid, or 0.
func childOf(pid int) int {
	kids := children(pid)
	if len(kids) == 0 {
		return 0
	}
	return kids[0]
}

func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

func zombieChildren(pid int) []int {
	var z []int
	for _, c := range children(pid) {
		if dead(c) {
			z = append(z, c)
		}
	}
	return z
}

func TestReloadBySIGHUPAndByWatching(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: %d
`
	for _, mode := range []string{"sighup", "watch"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			path := writeManifest(t, fmt.Sprintf(manifestFmt, 1))
			args := []string{"run", "--log-format", "json", "--reload-debounce", "50ms"}
			if mode == "sighup" {
				args = append(args, "--watch=false")
			}
			r := startPaddockArgs(t, append(args, path)...)
			r.workerPIDs(1)
			if mode == "watch" {
				testkit.WaitFor(t, "the watching event", func() bool { return r.logged("watching") })
			}
			if err := os.WriteFile(path, []byte(fmt.Sprintf(manifestFmt, 3)), 0o644); err != nil {
				t.Fatal(err)
			}
			if mode == "sighup" {
				if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			r.workerPIDs(3)
			if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d", code)
			}
			// Not watching: nothing reloaded before SIGHUP. The log, read
			// whole now that paddock exited, shows it in its order; no
			// waiting for something not to happen.
			if mode == "sighup" {
				if r.logged("watching") {
					t.Error("the manifests were watched although --watch=false")
				}
				if hup, reload := r.index("SIGHUP: reloading manifests"), r.index("reload"); reload < hup {
					t.Errorf("reloaded (log record %d) before SIGHUP (record %d) although --watch=false", reload, hup)
				}
			}
		})
	}
}

func TestAddressInUseAtStartup(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	path := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    listen: ["`+busy.Addr().String()+`"]
`)
	cmd := exec.Command(paddockBin, "run", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want code 1", err)
	}
	want := path + ":6:14: apps.web.listen[0]: cannot listen on " + busy.Addr().String() + ": address already in use"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	if strings.Contains(stderr.String(), "msg=fork") {
		t.Errorf("a worker was started:\n%s", stderr.String())
	}
}
