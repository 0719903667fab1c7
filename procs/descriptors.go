package procs

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetSubreaper makes this process the reaper of its orphaned descendants
// (PR_SET_CHILD_SUBREAPER), as PID 1 is. A worker's grandchild whose parent
// dies is re-parented here and reaped, never left a zombie.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// CloseOnExecInherited marks every descriptor from 3 up close-on-exec, so
// that descriptors this process inherited from its parent never leak into
// workers. Descriptors meant for a worker are passed explicitly. It uses
// close_range(2) with CLOSE_RANGE_CLOEXEC, and closeOnExecWalk on kernels
// without it (before 5.11).
func CloseOnExecInherited() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if werr := closeOnExecWalk(); werr != nil {
		return fmt.Errorf("close-on-exec inherited descriptors: %w", errors.Join(err, werr))
	}
	return nil
}

// closeOnExecWalk marks every descriptor from 3 up close-on-exec, one at a
// time, as listed in /proc/self/fd: CloseOnExecInherited's way on kernels
// whose close_range(2) cannot (before 5.11).
func closeOnExecWalk() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			// The directory's own descriptor is listed too, and closed
			// by now: EBADF.
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
