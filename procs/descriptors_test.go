package procs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestCloseOnExecInherited: a descriptor this process got without
// close-on-exec (as one inherited from whatever started paddock) reaches
// a child; once CloseOnExecInherited marked it, it no longer does, and
// neither after closeOnExecWalk, the way of kernels before 5.11 (this one
// takes close_range).
func TestCloseOnExecInherited(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "inherited")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// inChild starts a child and reports whether it has a descriptor on
	// marker. Start returns once the child executed its program: what
	// /proc shows then is what the program got.
	inChild := func() bool {
		t.Helper()
		cmd := exec.Command("/bin/sleep", "3600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		fds, err := testkit.OpenFDs(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", cmd.Process.Pid, fd)); target == marker {
				return true
			}
		}
		return false
	}
	for _, tt := range []struct {
		name string
		mark func() error
	}{
		{"close_range", CloseOnExecInherited},
		{"walking /proc/self/fd", closeOnExecWalk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fd, err := unix.Open(marker, unix.O_RDONLY, 0) // no O_CLOEXEC
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if !inChild() {
				t.Fatalf("descriptor %d without close-on-exec did not reach the child: the test cannot tell", fd)
			}
			if err := tt.mark(); err != nil {
				t.Fatal(err)
			}
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("descriptor %d has flags %#x (%v), want FD_CLOEXEC", fd, flags, err)
			}
			if inChild() {
				t.Errorf("descriptor %d reached the child after it was marked", fd)
			}
		})
	}
}
