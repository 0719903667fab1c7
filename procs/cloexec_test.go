package procs

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseOnExecFromThree checks the boundaries of both ways of marking
// inherited descriptors: descriptor 3, the first that is not stdin, stdout
// or stderr, is marked close-on-exec, and 0, 1 and 2 are left as they are
// (a worker inherits them). Descriptor 3 is made one without close-on-exec
// for the test (a copy of stdin when the process has none there), and its
// flags are put back after.
func TestCloseOnExecFromThree(t *testing.T) {
	for _, tt := range []struct {
		name string
		mark func() error
	}{
		{"close_range", CloseOnExecInherited},
		{"walking /proc/self/fd", closeOnExecWalk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flags, err := unix.FcntlInt(3, unix.F_GETFD, 0)
			switch {
			case errors.Is(err, unix.EBADF):
				if err := unix.Dup3(0, 3, 0); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Close(3) })
			case err != nil:
				t.Fatal(err)
			default:
				t.Cleanup(func() { unix.FcntlInt(3, unix.F_SETFD, flags) })
				if _, err := unix.FcntlInt(3, unix.F_SETFD, flags&^unix.FD_CLOEXEC); err != nil {
					t.Fatal(err)
				}
			}
			var std [3]int
			for fd := range std {
				if std[fd], err = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
					t.Fatalf("descriptor %d: %v", fd, err)
				}
			}
			if err := tt.mark(); err != nil {
				t.Fatal(err)
			}
			if got, err := unix.FcntlInt(3, unix.F_GETFD, 0); err != nil || got&unix.FD_CLOEXEC == 0 {
				t.Errorf("descriptor 3 has flags %#x (%v), want FD_CLOEXEC", got, err)
			}
			for fd, want := range std {
				if got, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); got != want {
					t.Errorf("descriptor %d: flags %#x, want them left at %#x", fd, got, want)
				}
			}
		})
	}
}
