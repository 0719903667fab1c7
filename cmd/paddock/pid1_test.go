package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

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
