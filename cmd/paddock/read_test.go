package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// maxRSS is more memory than paddock ever needs to validate a manifest:
// it used to read a link to /dev/zero until it was killed.
const maxRSS = 256 << 20

// rss returns the resident set size of pid in bytes, or 0.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// runBounded runs paddock with args to its end, killing it (and failing
// the test) if its memory grows past maxRSS or it does not return: what is
// under test must neither read without bound nor block.
func runBounded(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	cmd := exec.Command(paddockBin, args...)
	cmd.Env = append(os.Environ(), "PADDOCK_SOCKET="+socketPath(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-done:
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss<<10 > maxRSS {
				t.Errorf("paddock %s: peak RSS %d MiB", strings.Join(args, " "), ru.Maxrss>>10)
			}
			return out.String(), cmd.ProcessState.ExitCode()
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("paddock %s did not return; output:\n%s", strings.Join(args, " "), out.String())
		case <-time.After(10 * time.Millisecond):
			if n := rss(cmd.Process.Pid); n > maxRSS {
				cmd.Process.Kill()
				<-done
				t.Fatalf("paddock %s grew to %d MiB", strings.Join(args, " "), n>>20)
			}
		}
	}
}

// manifestDir returns a directory holding a valid good.yaml.
func manifestDir(t *testing.T, instances int) string {
	t.Helper()
	dir := t.TempDir()
	if err := testkit.WriteFile(filepath.Join(dir, "good.yaml"), []byte(fmt.Sprintf(sleepers, instances)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestValidateZeroSymlink: a *.yaml link to /dev/zero is reported by name
// (exit 1), and paddock's memory does not grow.
func TestValidateZeroSymlink(t *testing.T) {
	t.Parallel()
	dir := manifestDir(t, 1)
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", dir}, {"validate", zero}, {"run", dir}} {
		out, code := runBounded(t, args...)
		if code != 1 || !strings.Contains(out, zero+": is a character device, not a regular file") {
			t.Errorf("paddock %s: exit %d, output:\n%s", strings.Join(args, " "), code, out)
		}
	}
}

// TestValidateAndRunReportFIFO: a FIFO named x.yaml is reported by name
// (exit 1) by validate and run; neither blocks on it.
func TestValidateAndRunReportFIFO(t *testing.T) {
	t.Parallel()
	dir := manifestDir(t, 1)
	fifo := filepath.Join(dir, "x.yaml")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", dir}, {"validate", fifo}, {"run", dir}} {
		out, code := runBounded(t, args...)
		if code != 1 || !strings.Contains(out, fifo+": is a FIFO, not a regular file") {
			t.Errorf("paddock %s: exit %d, output:\n%s", strings.Join(args, " "), code, out)
		}
		if strings.Contains(out, "fork") {
			t.Errorf("paddock %s started a worker:\n%s", strings.Join(args, " "), out)
		}
	}
}

// loggedWith reports whether paddock logged msg with a field key holding
// want.
func (r *running) loggedWith(msg, key, want string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.logs {
		if v, ok := m[key].(string); ok && m["msg"] == msg && strings.Contains(v, want) {
			return true
		}
	}
	return false
}

// TestFIFOInWatchedDirectory: a FIFO that appears in a running
// supervisor's manifest directory is reported by name at each reload; the
// supervisor keeps serving reloads (SIGHUP after the FIFO is gone applies
// a later change) and SIGTERM stops it.
func TestFIFOInWatchedDirectory(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sighup", "watch"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := manifestDir(t, 1)
			args := []string{"run", "--log-format", "json", "--reload-debounce", "50ms"}
			if mode == "sighup" {
				args = append(args, "--watch=false")
			}
			r := startPaddockArgs(t, append(args, dir)...)
			r.workerPIDs(1)
			if mode == "watch" {
				testkit.WaitFor(t, "watching", func() bool { return r.logged("watching") })
			}
			fifo := filepath.Join(dir, "x.yaml")
			if err := unix.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			if mode == "sighup" {
				if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			testkit.WaitFor(t, "the FIFO reported", func() bool {
				return r.loggedWith("reload rejected", "err", fifo+": is a FIFO, not a regular file")
			})
			if err := os.Remove(fifo); err != nil {
				t.Fatal(err)
			}
			if err := testkit.WriteFile(filepath.Join(dir, "good.yaml"), []byte(fmt.Sprintf(sleepers, 2)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			r.workerPIDs(2)
			if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
		})
	}
}
