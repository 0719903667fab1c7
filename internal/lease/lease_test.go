package lease

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitCheck polls Check(path) until it returns an error that want accepts.
func waitCheck(t *testing.T, path string, want func(error) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := Check(path)
		if want(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check(%s) = %v", path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCheckSeesShellWriter runs the writer of the report, a shell that
// redirects into the file and writes to it later: while it waits, the file
// is empty and Check says a process has it open for writing.
func TestCheckSeesShellWriter(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("apps: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m, []byte("old content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(m); err != nil {
		t.Fatalf("no writer yet: %v", err)
	}
	r, w := io.Pipe()
	cmd := exec.Command("sh", "-c", "{ read line; cat good.yaml; } > m.yaml")
	cmd.Dir, cmd.Stdin = dir, r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCheck(t, m, func(err error) bool { return errors.Is(err, ErrWriting) })
	if fi, err := os.Stat(m); err != nil || fi.Size() != 0 {
		t.Fatalf("the shell's file while it waits: %v %v", fi, err)
	}
	io.WriteString(w, "go on\n")
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := Check(m); err != nil {
		t.Errorf("the writer exited: %v", err)
	}
	if b, _ := os.ReadFile(m); string(b) != "apps: {}\n" {
		t.Errorf("content %q", b)
	}
}

// TestCheckSeesSleepingShell runs `{ sleep N; cat good.yaml; } > m.yaml`
// literally: while the shell sleeps, a writer has the empty file open. (N
// is long so that a slow machine cannot miss it; the shell and its sleep
// are killed once seen.)
func TestCheckSeesSleepingShell(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("apps: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "{ sleep 60; cat good.yaml; } > m.yaml")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	waitCheck(t, m, func(err error) bool { return errors.Is(err, ErrWriting) })
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	// Once the shell and its sleep are gone, nobody writes the file.
	waitCheck(t, m, func(err error) bool { return err == nil })
}

// TestCheckSeesOwnWriter: a descriptor open for writing in this very
// process counts too.
func TestCheckSeesOwnWriter(t *testing.T) {
	m := filepath.Join(t.TempDir(), "m.yaml")
	f, err := os.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(m); !errors.Is(err, ErrWriting) {
		t.Errorf("with the file open for writing: %v", err)
	}
	f.Close()
	if err := Check(m); err != nil {
		t.Errorf("closed: %v", err)
	}
	// Read-only opens are no writers.
	ro, err := os.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := Check(m); err != nil {
		t.Errorf("open read-only: %v", err)
	}
}

// TestCheckNeverBlocks: a FIFO, a device, a missing file are nobody's
// half-written manifest; Check returns at once for them.
func TestCheckNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "x.yaml")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, zero, filepath.Join(dir, "missing.yaml")} {
		if err := Check(p); err != nil {
			t.Errorf("Check(%s) = %v", p, err)
		}
	}
}

// TestTakeRefusedIsUnavailable: without the right to a lease (neither the
// file's owner nor CAP_LEASE) the kernel refuses it with EACCES, which
// tells nothing about writers.
func TestTakeRefusedIsUnavailable(t *testing.T) {
	path := "/etc/passwd" // owned by root, readable by all
	if os.Geteuid() == 0 {
		path = filepath.Join(t.TempDir(), "m.yaml")
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	errc := make(chan error)
	go func() {
		// Capabilities belong to a thread: this one drops CAP_LEASE and
		// ends with the goroutine (never unlocked).
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_LEASE
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- Take(fd)
	}()
	err = <-errc
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || !errors.Is(err, unix.EACCES) {
		t.Fatalf("Take without the right to a lease: %v", err)
	}
}
