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

// cloexecHelperEnv makes the test binary mark its inherited descriptors
// close-on-exec the way its value names, then exit 0 when descriptor 3 is
// marked, 1 when it is not.
const cloexecHelperEnv = "PROCS_TEST_CLOEXEC"

// cloexecHelper is the test binary's role under cloexecHelperEnv.
func cloexecHelper(how string) int {
	mark := CloseOnExecInherited
	if how == "walk" {
		mark = closeOnExecWalk
	}
	if err := mark(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	flags, err := unix.FcntlInt(3, unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		fmt.Fprintf(os.Stderr, "descriptor 3 has flags %#x (%v)\n", flags, err)
		return 1
	}
	return 0
}

// TestCloseOnExecFromThree: both ways of marking inherited descriptors
// start at descriptor 3, the first one a parent passes on. A descriptor
// opened here gets whatever number is free, seldom 3 (TestCloseOnExecInherited
// cannot tell an off-by-one), so the test binary is started with a pipe as
// its descriptor 3 and marks its own.
func TestCloseOnExecFromThree(t *testing.T) {
	for _, how := range []string{"close_range", "walk"} {
		t.Run(how, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), cloexecHelperEnv+"="+how)
			cmd.ExtraFiles = []*os.File{testkit.Pipe(t)}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("descriptor 3 not marked close-on-exec: %v\n%s", err, out)
			}
		})
	}
}
