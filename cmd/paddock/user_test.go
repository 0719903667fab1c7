package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestUserWithListenWhenUserCannotExecutePaddock: `user:` with `listen:`
// works when the worker's user may not execute paddock's own binary (only
// root may, as `go install` leaves it under umask 077 in /root/go/bin): the
// worker runs as that user with LISTEN_PID equal to its own pid. A program
// the user cannot execute is a start error naming that program.
func TestUserWithListenWhenUserCannotExecutePaddock(t *testing.T) {
	t.Parallel()
	testkit.NeedRoot(t, "to run workers as another user")
	private := filepath.Join(t.TempDir(), "root-only")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := testkit.CopyFile(t, paddockBin, filepath.Join(private, "paddock"), 0o700)
	prog := filepath.Join(private, "prog")
	if err := testkit.WriteFile(prog, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := writeManifest(t, fmt.Sprintf(`
apps:
  web:
    exec: /bin/sh
    args: ["-c", "echo \"worker uid=$(id -u) listen_pid=$LISTEN_PID pid=$$ fds=$LISTEN_FDS\" >&2; exec sleep 3600"]
    cwd: /
    user: nobody
    listen: ["127.0.0.1:0"]
  private:
    exec: %s
    cwd: /
    user: nobody
    listen: ["127.0.0.1:0"]
    restart: never
`, prog))
	if out, err := exec.Command(bin, "validate", manifest).CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	r := startPaddockCmd(t, exec.Command(bin, "run", "--log-format", "json", manifest))
	// The first fork of web: the private app's worker is forked too, and
	// its exec shim fails.
	var pid int
	testkit.WaitFor(t, "web's first fork", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.logs {
			if m["msg"] == "fork" && m["app"] == "web" {
				pid = int(m["pid"].(float64))
				return true
			}
		}
		return false
	})
	line := regexp.MustCompile(`worker uid=(\d+) listen_pid=(\d*) pid=(\d+) fds=(\d*)`)
	deadline := time.Now().Add(patience)
	for {
		r.mu.Lock()
		var m []string
		for _, l := range r.other {
			if m = line.FindStringSubmatch(l); m != nil {
				break
			}
		}
		r.mu.Unlock()
		if m != nil {
			if want := []string{"65534", strconv.Itoa(pid), strconv.Itoa(pid), "1"}; !slices.Equal(m[1:], want) {
				t.Errorf("worker says uid=%s listen_pid=%s pid=%s fds=%s; want %v", m[1], m[2], m[3], m[4], want)
			}
			break
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			t.Fatalf("the worker never spoke; paddock's log: %v\n%s", r.logs, strings.Join(r.other, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var status string
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "Uid:") {
				status = strings.Fields(l)[1]
			}
		}
	}
	if status != "65534" {
		t.Errorf("worker pid %d runs as uid %q, want 65534", pid, status)
	}

	want := "exec " + prog + ": permission denied"
	var errText string
	testkit.WaitFor(t, "a start failure for the private program", func() bool {
		var ok bool
		errText, ok = r.logValue("start failed", "err")
		return ok
	})
	if errText != want {
		t.Errorf("start error %q, want %q", errText, want)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.wait()
}
