package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// softNoFile returns the soft open files limit of process pid.
func softNoFile(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(line, "Max open files") {
			n, err := strconv.Atoi(f[3])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits", pid)
	return 0
}

// TestOpenFilesLimit: paddock raises its own soft limit to the hard one,
// workers keep the limit paddock was started with, and manifests that
// cannot fit in the limit are reported by validate (exit 0: the limit
// where they run may differ) and at start, with start failures that say
// what to do.
func TestOpenFilesLimit(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	many := writeManifest(t, `
apps:
  many:
    exec: /bin/sleep
    args: [600]
    silent: true
    instances: 100
`)
	stdout, stderr, code := runCommand(t, exec.Command("prlimit", "--nofile=128:128", paddockBin, "validate", many))
	if code != 0 || stdout != "ok: 1 app, 100 workers\n" || !strings.Contains(stderr, "open files limit is 128") {
		t.Errorf("validate under a limit of 128: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	t.Run("raised", func(t *testing.T) {
		t.Parallel()
		r := startPaddockCmd(t, exec.Command("prlimit", "--nofile=256:4096", paddockBin, "run", "--log-format", "json",
			writeManifest(t, "apps:\n  one:\n    exec: /bin/sleep\n    args: [600]\n")))
		pid := r.workerPIDs(1)[0]
		if got := softNoFile(t, r.cmd.Process.Pid); got < 4000 {
			t.Errorf("paddock's soft limit is %d, want it raised toward the hard limit 4096", got)
		}
		if got := softNoFile(t, pid); got != 256 {
			t.Errorf("the worker's soft limit is %d, want 256, as paddock was started", got)
		}
		if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := r.wait(); code != 0 {
			t.Errorf("exit code %d", code)
		}
	})

	t.Run("too low", func(t *testing.T) {
		t.Parallel()
		r := startPaddockCmd(t, exec.Command("prlimit", "--nofile=128:128", paddockBin, "run", "--log-format", "json", many))
		testkit.WaitFor(t, "the warning and a start failure that says why", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			warned, failed := false, false
			for _, m := range r.logs {
				msg, _ := m["msg"].(string)
				detail, _ := m["detail"].(string)
				warned = warned || strings.Contains(msg, "open files limit is 128")
				failed = failed || (msg == "exit" && strings.Contains(detail, "run out of descriptors (open files limit 128)"))
			}
			return warned && failed
		})
		if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := r.wait(); code != 0 {
			t.Errorf("exit code %d", code)
		}
	})
}
