package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestSocketIsPrivate(t *testing.T) {
	t.Parallel()
	testkit.NeedRoot(t, "to run a client as the user nobody")
	dir := t.TempDir()
	// nobody must reach the socket's directory and the paddock binary for
	// the test to mean anything.
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(paddockBin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "control.sock")
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	old := syscall.Umask(0) // the most permissive umask: the socket must still be 0600
	r := startWithSocket(t, sock, manifest)
	syscall.Umask(old)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	if _, _, code := cli(t, sock, "status"); code != 0 {
		t.Fatalf("status as the supervisor's own user: exit %d", code)
	}

	asNobody := func() (string, int) {
		cmd := exec.Command(paddockBin, "status", "--socket", sock)
		testkit.AsUser(cmd, testkit.Nobody)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("status as nobody: %v, want exit 1", err)
		}
		return stderr.String(), ee.ExitCode()
	}
	// The file mode keeps nobody out.
	if msg, code := asNobody(); code != 1 || !strings.Contains(msg, "permission denied") {
		t.Errorf("nobody through a 0600 socket: exit %d, %q", code, msg)
	}
	// Even when the mode lets it in, SO_PEERCRED does not.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	msg, code := asNobody()
	if code != 1 || !strings.Contains(msg, "closed the connection without answering (it serves only its own user and root)") {
		t.Errorf("nobody through a 0666 socket: exit %d, %q", code, msg)
	}
	testkit.WaitFor(t, "the refusal in the log", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.logs {
			if m["msg"] == "control connection refused: another user" && m["uid"] == float64(65534) {
				return true
			}
		}
		return false
	})
}

func TestStaleSocketReplacedLiveSocketRefused(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	// A socket left behind by a supervisor that died: bound, then closed
	// without being removed.
	testkit.StaleUnixSocket(t, sock)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	r := startWithSocket(t, sock, manifest)
	waitWorkers(t, sock, "web", 1)
	r.workerPIDs(1) // the log is read up to the fork, which comes after the socket's record
	if !r.logged("replaced a stale control socket left by a supervisor that is gone") {
		t.Error("the stale socket's replacement was not logged")
	}

	// A second supervisor on the same socket refuses to start, and
	// starts no worker.
	second := exec.Command(paddockBin, "run", "--socket", sock, manifest)
	var stderr bytes.Buffer
	second.Stderr = &stderr
	err := second.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second supervisor: %v, want exit 1", err)
	}
	if !strings.Contains(stderr.String(), "another paddock supervisor is already serving this control socket") {
		t.Errorf("second supervisor's message: %s", stderr.String())
	}
	if strings.Contains(stderr.String(), "fork") {
		t.Errorf("the second supervisor started workers: %s", stderr.String())
	}
	// The first one is untouched.
	if n := len(liveWorkers(statusOf(t, sock), "web")); n != 1 {
		t.Errorf("%d workers after the refused start, want 1", n)
	}

	// Anything that is not a socket is left alone.
	file := filepath.Join(t.TempDir(), "file")
	testkit.WriteFile(file, []byte("keep me"), 0o644)
	out, err := exec.Command(paddockBin, "run", "--socket", file, manifest).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exists and is not a socket") {
		t.Errorf("a regular file as socket path: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was replaced")
	}

	// A graceful stop removes the socket.
	r.cmd.Process.Signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after the supervisor stopped: %v", err)
	}
}

func TestNoSupervisorAnswers(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	for _, args := range [][]string{{"status"}, {"events"}, {"scale", "web", "2"}, {"restart", "web"}, {"reload"},
		{"send", "web", "1"}, {"signal", "web", "HUP"}, {"logs"}, {"stop"}} {
		_, errOut, code := cli(t, sock, args...)
		if code != 1 || !strings.Contains(errOut, "no paddock supervisor answers on "+sock) {
			t.Errorf("paddock %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
	// diff keeps 1 for "something would change": errors are 2.
	if _, errOut, code := cli(t, sock, "diff"); code != 2 || !strings.Contains(errOut, "no paddock supervisor answers") {
		t.Errorf("paddock diff: exit %d, stderr %q", code, errOut)
	}
}

// TestSocketOfAnotherUser: a socket served by another user is neither
// trusted by a client that is not root nor taken over by a supervisor.
func TestSocketOfAnotherUser(t *testing.T) {
	t.Parallel()
	testkit.NeedRoot(t, "to run processes as other users")
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(paddockBin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o777); err != nil { // like /tmp, minus the sticky bit
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "paddock.yaml")
	testkit.WriteFile(manifest, []byte(fmt.Sprintf(sleepers, 1)), 0o644)
	sock := filepath.Join(dir, "control.sock")

	// A supervisor run by nobody.
	cmd := exec.Command(paddockBin, "run", "--log-format", "json", "--socket", sock, manifest)
	cmd.Dir = dir
	testkit.AsUser(cmd, testkit.Nobody)
	startPaddockCmd(t, cmd)
	testkit.WaitFor(t, "nobody's supervisor", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// root may talk to it (and is served: root is always let in).
	if n := len(waitWorkers(t, sock, "web", 1)); n != 1 {
		t.Fatalf("%d workers", n)
	}
	// A client of uid 1000 refuses to talk to it, even when the mode lets
	// it connect.
	os.Chmod(sock, 0o666)
	client := exec.Command(paddockBin, "status", "--socket", sock)
	testkit.AsUser(client, 1000)
	out, err := client.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "uid 65534") ||
		!strings.Contains(string(out), "refusing to talk to it") {
		t.Errorf("status as uid 1000 against nobody's supervisor: %v\n%s", err, out)
	}
	// A supervisor of root's does not take the name over.
	second, err := exec.Command(paddockBin, "run", "--socket", sock, manifest).CombinedOutput()
	if err == nil || !strings.Contains(string(second), "belongs to uid 65534") {
		t.Errorf("root's supervisor on nobody's socket: %v\n%s", err, second)
	}
}
