// Package procs starts worker processes, signals them and their process
// groups, reaps every child of the supervisor, its own and re-parented
// orphans alike, and sees to it that no worker or descendant outlives a
// supervisor that is killed (a cgroup of their own, a watchdog process).
//
// A worker leads its own process group, so that SIGKILL to the group ends
// the grandchildren it spawned too, and dies with the supervisor
// (Pdeathsig). It inherits stdin from /dev/null, the stdout and stderr it is
// given and the descriptors listed in Spec.ExtraFiles, nothing else.
//
// A Reaper is the one place that waits for children: nothing in the
// supervisor calls os.Process.Wait, so statuses cannot be stolen between two
// waiters, and a process group is signalled only while its leader is known
// not to have been reaped, so that a reused process group id is never hit.
package procs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spec describes a process to start.
type Spec struct {
	// Path is the absolute path of the program; Argv its argument vector,
	// Argv[0] included.
	Path string
	Argv []string
	// Dir is the working directory.
	Dir string
	// Env is the complete environment, "KEY=value" entries. Start adds
	// PADDOCK_SUPERVISOR, "<supervisor pid>-<its start time in clock
	// ticks after boot>", which descendants inherit, so that the
	// watchdog finds those that left their worker's process group.
	Env []string
	// Stdout and Stderr become the process's descriptors 1 and 2; nil means
	// /dev/null.
	Stdout, Stderr *os.File
	// ExtraFiles become descriptors 3, 4, ... in order.
	ExtraFiles []*os.File
	// ListenNames, when not empty, says that the first len(ListenNames)
	// ExtraFiles are listening sockets, handed over as systemd's socket
	// activation does: LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set to the
	// worker's own pid by a re-exec of this program (see ExecShim), since
	// no variable can be set between fork and exec otherwise.
	ListenNames []string
	// PIDEnv names more variables set to the process's own pid by that
	// re-exec, as systemd sets WATCHDOG_PID.
	PIDEnv []string
	// Credential, when set, is the identity the process runs as.
	Credential *syscall.Credential
}

// StartError is the error of every failed Start. It names the program the
// Spec named (Path and Argv[0]), never the re-executed supervisor binary
// that sets LISTEN_PID, and wraps the cause: errors.Is(err,
// fs.ErrNotExist) and errors.Is(err, syscall.EACCES) work on it.
type StartError struct {
	// Op is what failed: "fork/exec" (starting the process), "exec" (the
	// shim's privilege drop or execve of Path) or "start" (anything
	// before, such as opening /dev/null).
	Op string
	// Path is Spec.Path, the program; Argv0 is Spec.Argv[0], the name the
	// program was to be given ("" when Argv was empty).
	Path  string
	Argv0 string
	// Err is the cause, a syscall.Errno for most failures; a failure of
	// the shim before execve says which step failed ("setuid 65534:
	// operation not permitted", "chdir /srv: permission denied").
	Err error
}

// Error reads "exec /srv/web: permission denied"; Argv0 is added, as in
// `fork/exec /usr/bin/node (argv[0] "web"): no such file or directory`,
// when it is neither Path nor Path's base name.
func (e *StartError) Error() string {
	name := e.Path
	if e.Argv0 != "" && e.Argv0 != e.Path && e.Argv0 != filepath.Base(e.Path) {
		name += " (argv[0] " + strconv.Quote(e.Argv0) + ")"
	}
	return e.Op + " " + name + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// newStartError returns the *StartError of s for op and err.
func newStartError(s *Spec, op string, err error) *StartError {
	se := &StartError{Op: op, Path: s.Path, Err: err}
	if len(s.Argv) > 0 {
		se.Argv0 = s.Argv[0]
	}
	return se
}

// Process is a started process group leader. Signals to the process go
// through a pidfd where the kernel has them, and signals to its group only
// while the leader is not reaped, so neither ever reaches another process
// that reused the pid.
type Process struct {
	Pid       int
	StartedAt time.Time
	p         *os.Process
	r         *Reaper
	// reaped is set, under r.mu, before the process is reaped.
	reaped bool
	// shimDone is closed, for a process started through the exec shim,
	// once the shim executed the program or reported why it could not
	// (shimErr).
	shimDone chan struct{}
	shimErr  error
}

// Signal sends sig to the process alone. A process that has already exited
// is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	err := p.p.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// KillGroup sends SIGKILL to the process's whole process group: the process
// and every descendant that did not leave the group. Once the process has
// been reaped (or is being reaped) it does nothing and returns nil: its
// group id may belong to another process by then, and the Reaper has
// already killed what was left in the group. It is safe for concurrent use.
func (p *Process) KillGroup() error {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if p.reaped {
		return nil
	}
	return killGroup(p.Pid)
}

// killGroup sends SIGKILL to process group pgid; a group that no longer
// exists is not an error.
func killGroup(pgid int) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	err := unix.Kill(-pgid, unix.SIGKILL)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// groupAlive reports whether any process, a zombie included, is left in
// process group pgid.
func groupAlive(pgid int) bool {
	if pgid <= 1 {
		return false
	}
	err := unix.Kill(-pgid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Release frees the resources held for the process (its pidfd). Call it
// once the process has been reaped.
func (p *Process) Release() {
	_ = p.p.Release()
}

// Exit is a reaped child.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
	Time   time.Time
	// GroupKilled is set when Pid led a process group started by Start
	// and processes were left in that group when it exited: they were
	// sent SIGKILL before Pid was reaped.
	GroupKilled bool
	// StartErr, for a process started through the exec shim, is why the
	// shim could not execute the program (a *StartError naming it); the
	// process then exited with status 127 without running it.
	StartErr error
}

// Success reports whether the child exited with code 0.
func (e Exit) Success() bool { return e.Status.Exited() && e.Status.ExitStatus() == 0 }

// String describes the exit: "exit code 3" or "signal killed".
func (e Exit) String() string {
	switch {
	case e.Status.Exited():
		return "exit code " + strconv.Itoa(e.Status.ExitStatus())
	case e.Status.Signaled():
		return "signal " + e.Status.Signal().String()
	}
	return fmt.Sprintf("status %#x", uint32(e.Status))
}
