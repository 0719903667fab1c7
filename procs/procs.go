// Package procs starts worker processes, signals them and their process
// groups, and reaps every child of the supervisor, its own and re-parented
// orphans alike.
//
// A worker leads its own process group, so that SIGKILL to the group ends
// the grandchildren it spawned too, and dies with the supervisor
// (Pdeathsig). It inherits stdin from /dev/null, the stdout and stderr it is
// given and the descriptors listed in Spec.ExtraFiles, nothing else.
//
// Reap is the one place that waits for children: nothing in the supervisor
// calls os.Process.Wait, so statuses cannot be stolen between two waiters.
package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
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
	// Env is the complete environment, "KEY=value" entries.
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
	// Credential, when set, is the identity the process runs as.
	Credential *syscall.Credential
}

// Process is a started process. Signals go through a pidfd where the kernel
// has them, so a signal never reaches another process that reused the pid.
type Process struct {
	Pid       int
	StartedAt time.Time
	p         *os.Process
}

// Start starts the process described by s. The caller must see to it that
// Reap is running, or the process stays a zombie when it exits.
func Start(s Spec) (*Process, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	orNull := func(f *os.File) *os.File {
		if f == nil {
			return devnull
		}
		return f
	}
	files := append([]*os.File{devnull, orNull(s.Stdout), orNull(s.Stderr)}, s.ExtraFiles...)
	attr := &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	attr.Credential = s.Credential
	path, env := s.Path, s.Env
	if len(s.ListenNames) > 0 {
		path = "/proc/self/exe"
		env = append(env[:len(env):len(env)],
			"LISTEN_FDS="+strconv.Itoa(len(s.ListenNames)),
			"LISTEN_FDNAMES="+strings.Join(s.ListenNames, ":"),
			shimEnv+"="+s.Path)
	}
	p, err := os.StartProcess(path, s.Argv, &os.ProcAttr{
		Dir:   s.Dir,
		Env:   env,
		Files: files,
		Sys:   attr,
	})
	if err != nil {
		return nil, err
	}
	return &Process{Pid: p.Pid, StartedAt: time.Now(), p: p}, nil
}

// shimEnv carries, to the re-executed supervisor binary, the program it is
// to become.
const shimEnv = "PADDOCK_EXEC_SHIM"

// ExecShim turns this process into the program named by PADDOCK_EXEC_SHIM
// when it was started as a worker's shim, with LISTEN_PID set to its own
// pid, which execve keeps; otherwise it returns at once. Call it first thing
// in main (and in TestMain of tests that start workers with listening
// sockets): it must run before anything opens a descriptor without
// close-on-exec. On failure it exits 127, as a shell does for a program it
// cannot run.
func ExecShim() {
	target, ok := os.LookupEnv(shimEnv)
	if !ok {
		return
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") && !strings.HasPrefix(kv, "LISTEN_PID=") {
			env = append(env, kv)
		}
	}
	env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	err := syscall.Exec(target, os.Args, env)
	fmt.Fprintf(os.Stderr, "paddock: exec %s: %v\n", target, err)
	os.Exit(127)
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
// and every descendant that did not leave the group. A group that no longer
// exists is not an error.
func (p *Process) KillGroup() error {
	return KillGroup(p.Pid)
}

// KillGroup sends SIGKILL to process group pgid.
func KillGroup(pgid int) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	err := unix.Kill(-pgid, unix.SIGKILL)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// GroupAlive reports whether any process is left in process group pgid.
func GroupAlive(pgid int) bool {
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

// Reap waits for every child of this process as it exits, worker or
// re-parented orphan, and sends each to out. It returns when ctx is done.
// Only one Reap may run in a process, and nothing else in the process may
// wait for children while it does.
func Reap(ctx context.Context, out chan<- Exit) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	// A safety net: SIGCHLD may have been delivered before Notify.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			var st unix.WaitStatus
			pid, err := unix.Wait4(-1, &st, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			select {
			case out <- Exit{Pid: pid, Status: st, Time: time.Now()}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-tick.C:
		}
	}
}

// SetSubreaper makes this process the reaper of its orphaned descendants
// (PR_SET_CHILD_SUBREAPER), as PID 1 is. A worker's grandchild whose parent
// dies is re-parented here and reaped, never left a zombie.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// CloseOnExecInherited marks every descriptor from 3 up close-on-exec, so
// that descriptors this process inherited from its parent never leak into
// workers. Descriptors meant for a worker are passed explicitly.
func CloseOnExecInherited() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11: walk /proc/self/fd.
	entries, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close-on-exec inherited descriptors: %w", errors.Join(err, rerr))
	}
	for _, e := range entries {
		fd, convErr := strconv.Atoi(e.Name())
		if convErr == nil && fd >= 3 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// OpenFDs lists the open descriptors of process pid, from /proc.
func OpenFDs(pid int) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}
