package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// The workers of TestPID1Shutdown: /bin/sh scripts (readable by whoever
// paddock runs as). graceful traps SIGTERM, waits for $DIR/release when
// there is such a file to wait for, writes its name to $DIR/cleaned and
// exits 0; stubborn ignores SIGTERM (and so does the sleep it runs). Each
// says it is set up by creating $DIR/up.NAME.$$.
const (
	pid1Graceful = `
  graceful:
    exec: /bin/sh
    args: ["-c", "trap 'while [ -n \"$WAIT\" ] && [ ! -e $DIR/release ]; do sleep 0.05; done; echo graceful >> $DIR/cleaned; exit 0' TERM; : > $DIR/up.graceful.$$; while :; do sleep 1 & wait $!; done"]
    env: {WAIT: "%s"}
    killTimeout: 1h
`
	pid1Stubborn = `
  stubborn:
    exec: /bin/sh
    args: ["-c", "trap '' TERM; : > $DIR/up.stubborn.$$; while :; do sleep 1; done"]
    killTimeout: %s
`
)

// TestPID1Shutdown runs paddock as PID 1 of a new PID namespace, as a
// container's entrypoint, and checks what its orchestrator relies on: the
// signals it handles (a PID 1 gets none it has no handler for), what the
// workers get, and the exit code of each way it ends. Root creates the
// namespace itself; another user does it in a user namespace of its own.
func TestPID1Shutdown(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"root", "user namespace"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			if mode == "root" {
				testkit.NeedRoot(t, "to create a PID namespace without a user namespace")
			}
			testPID1Shutdown(t, mode == "user namespace")
		})
	}
}

// testPID1Shutdown runs the cases of TestPID1Shutdown, paddock in a user
// namespace of its own or not.
func testPID1Shutdown(t *testing.T, userns bool) {
	start := func(t *testing.T, manifest string, args ...string) (*running, int, string) {
		t.Helper()
		return startPID1(t, userns, manifest, args...)
	}
	for _, c := range pid1Cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, start)
		})
	}
}

// pid1Start starts paddock as PID 1 over a manifest: startPID1 with the
// namespaces of one subtest of TestPID1Shutdown.
type pid1Start func(t *testing.T, manifest string, args ...string) (*running, int, string)

// pid1Cases are the cases of TestPID1Shutdown, each run as root and in a
// user namespace.
var pid1Cases = []struct {
	name string
	run  func(t *testing.T, startPID1 pid1Start)
}{
	{"SIGTERM within killTimeout exits 0", pid1GracefulWithinKillTimeout},
	{"worker killed after killTimeout exits 1", pid1KilledAfterKillTimeout},
	{"second SIGTERM kills at once and exits 1", pid1SecondSIGTERM},
	{"SIGINT exits 0", pid1SIGINT},
	{"SIGHUP reloads", pid1SIGHUPReloads},
	{"critical app failed exits 3", pid1CriticalAppFailed},
}

// pid1GracefulWithinKillTimeout: SIGTERM within killTimeout exits 0.
// The graceful worker gets SIGTERM and takes its time: it ends only
// once the test saw paddock waiting for it, within killTimeout
// (1h), and is not killed; paddock then exits 0.
func pid1GracefulWithinKillTimeout(t *testing.T, startPID1 pid1Start) {
	r, pid1, dir := startPID1(t, "apps:"+fmt.Sprintf(pid1Graceful, "yes"))
	waitUp(t, dir, "graceful", 1)
	signalPID1(t, pid1, syscall.SIGTERM)
	testkit.WaitFor(t, "the stopping record", func() bool { return r.logged("stopping") })
	if r.logged("shutdown") || dead(pid1) {
		t.Fatal("paddock ended before its worker finished within killTimeout")
	}
	if err := testkit.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 0 {
		t.Errorf("exit code %d, want 0 (every worker stopped within its killTimeout)", code)
	}
	checkCleaned(t, dir, "graceful")
	checkExit(t, r, "graceful", "code", 0.0)
	if r.logged("kill") {
		t.Error("a worker was killed, although it stopped within its killTimeout")
	}
}

// pid1KilledAfterKillTimeout: worker killed after killTimeout exits 1.
// stubborn ignores SIGTERM past its killTimeout (300ms): SIGKILL,
// exit 1. graceful, beside it, still stops cleanly.
func pid1KilledAfterKillTimeout(t *testing.T, startPID1 pid1Start) {
	r, pid1, dir := startPID1(t, "apps:"+fmt.Sprintf(pid1Graceful, "")+fmt.Sprintf(pid1Stubborn, "300ms"))
	waitUp(t, dir, "graceful", 1)
	waitUp(t, dir, "stubborn", 1)
	signalPID1(t, pid1, syscall.SIGTERM)
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d, want 1 (a worker needed SIGKILL)", code)
	}
	checkCleaned(t, dir, "graceful")
	checkExit(t, r, "graceful", "code", 0.0)
	checkExit(t, r, "stubborn", "signal", "SIGKILL")
	if r.find(func(m map[string]any) bool { return m["msg"] == "kill" && m["app"] == "stubborn" }) == nil {
		t.Error("no kill record for stubborn")
	}
}

// pid1SecondSIGTERM: second SIGTERM kills at once and exits 1.
// stubborn's killTimeout is 1h: only the second signal ends it.
func pid1SecondSIGTERM(t *testing.T, startPID1 pid1Start) {
	r, pid1, dir := startPID1(t, "apps:"+fmt.Sprintf(pid1Stubborn, "1h"))
	waitUp(t, dir, "stubborn", 1)
	signalPID1(t, pid1, syscall.SIGTERM)
	testkit.WaitFor(t, "the stopping record", func() bool { return r.logged("stopping") })
	signalPID1(t, pid1, syscall.SIGTERM)
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

// pid1SIGINT: SIGINT exits 0.
func pid1SIGINT(t *testing.T, startPID1 pid1Start) {
	r, pid1, dir := startPID1(t, "apps:"+fmt.Sprintf(pid1Graceful, ""))
	waitUp(t, dir, "graceful", 1)
	signalPID1(t, pid1, syscall.SIGINT)
	if code := r.wait(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	checkCleaned(t, dir, "graceful")
}

// pid1SIGHUPReloads: SIGHUP reloads.
// Not watching the files: only SIGHUP, which a PID 1 gets only
// because paddock handles it, applies the second instance.
func pid1SIGHUPReloads(t *testing.T, startPID1 pid1Start) {
	manifest := "apps:" + fmt.Sprintf(pid1Graceful, "")
	r, pid1, dir := startPID1(t, manifest, "--watch=false")
	waitUp(t, dir, "graceful", 1)
	path := filepath.Join(dir, "paddock.yaml")
	scaled := strings.Replace(manifest, "killTimeout: 1h", "killTimeout: 1h\n    instances: 2", 1)
	if err := testkit.WriteFile(path, []byte(strings.ReplaceAll(scaled, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	signalPID1(t, pid1, syscall.SIGHUP)
	waitUp(t, dir, "graceful", 2)
	signalPID1(t, pid1, syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	checkCleaned(t, dir, "graceful", "graceful")
}

// pid1CriticalAppFailed: critical app failed exits 3.
// No signal: paddock ends by itself, stopping graceful cleanly.
func pid1CriticalAppFailed(t *testing.T, startPID1 pid1Start) {
	r, _, _ := startPID1(t, `apps:
  bad:
    exec: /bin/false
    backoff: {initial: 10ms, max: 50ms}
    critical: true
    failAfter: 1s
`+fmt.Sprintf(pid1Graceful, ""))
	if code := r.wait(); code != exitAppFailed {
		t.Errorf("exit code %d, want %d (a critical app failed)", code, exitAppFailed)
	}
	if !r.logged("app-failed") {
		t.Error("no app-failed record")
	}
	// graceful was stopped on purpose, within its killTimeout (by its
	// handler, or by SIGTERM itself if it came before the trap was set).
	checkExit(t, r, "graceful", "intended", true)
	if r.logged("kill") {
		t.Error("a worker was killed, although every one stops on SIGTERM")
	}
}

// startPID1 runs paddock run --log-format json (and args) as PID 1 of a new
// PID namespace (in a new user namespace too when userns, as an
// unprivileged user) over manifest (written to DIR/paddock.yaml, $DIR replaced;
// DIR writable by the workers), and returns it, the pid of paddock (seen
// from here) and DIR.
func startPID1(t *testing.T, userns bool, manifest string, args ...string) (*running, int, string) {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1) to create a PID namespace")
	}
	path := writeManifest(t, manifest)
	dir := filepath.Dir(path)
	run := append([]string{paddockBin, "run", "--log-format", "json"}, args...)
	var cmd *exec.Cmd
	if !userns {
		cmd = exec.Command(unshare, append([]string{"--pid", "--fork", "--kill-child"}, append(run, path)...)...)
	} else {
		sock := unprivilegedDirs(t, path)
		cmd = unprivileged(t, unshare, append([]string{"--user", "--map-root-user", "--pid", "--fork", "--kill-child"},
			append(run, "--socket", sock, path)...)...)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	r := startPaddockCmd(t, cmd)
	var pid1 int
	testkit.WaitFor(t, "unshare to fork paddock", func() bool {
		pid1 = childOf(cmd.Process.Pid)
		return pid1 != 0
	})
	asPID1 := func() bool {
		return r.find(func(m map[string]any) bool {
			msg, _ := m["msg"].(string)
			return strings.HasPrefix(msg, "running as PID 1")
		}) != nil
	}
	testkit.WaitFor(t, "paddock to say it runs as PID 1, or to exit", func() bool { return asPID1() || dead(pid1) })
	if !asPID1() {
		t.Fatal("paddock did not say it runs as PID 1")
	}
	return r, pid1, dir
}

func signalPID1(t *testing.T, pid1 int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid1, sig); err != nil {
		t.Fatalf("%v to paddock: %v", sig, err)
	}
}

// waitUp waits until n workers of app (graceful, stubborn) have set up
// their signal dispositions.
func waitUp(t *testing.T, dir, app string, n int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%d %s workers up", n, app), func() bool {
		up, _ := filepath.Glob(filepath.Join(dir, "up."+app+".*"))
		return len(up) >= n
	})
}

// checkCleaned checks, once paddock exited, that the workers that ran
// their SIGTERM handler to the end are want: the signal reached each, and
// each was let finish.
func checkCleaned(t *testing.T, dir string, want ...string) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "cleaned"))
	if got := strings.Fields(string(b)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("workers that finished their SIGTERM handler: %q, want %q", got, want)
	}
}

// checkExit checks that every exit record of app has key = want (code 0:
// exited by itself; signal SIGKILL: killed) and that there is one.
func checkExit(t *testing.T, r *running, app, key string, want any) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.logs {
		if m["msg"] == "exit" && m["app"] == app {
			n++
			if m[key] != want {
				t.Errorf("%s's worker exit record %v, want %s %v", app, m, key, want)
			}
		}
	}
	if n == 0 {
		t.Errorf("no exit record for %s", app)
	}
}
