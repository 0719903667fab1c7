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
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

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

// Reaper starts processes and reaps every child of this process as it
// exits. It keeps a table of the process group leaders it started: when a
// leader exits, whatever is left in its process group is killed before the
// leader is reaped (a worker's group never outlives it), and
// Process.KillGroup signals a group only while its leader is unreaped.
//
// The zero value is usable; set Cgroup and Watchdog before the first Start.
// Start may be called from any goroutine; Run must run, in one goroutine,
// while processes are started, or they stay zombies when they exit.
type Reaper struct {
	// Cgroup, when set, is the cgroup v2 every process is started in
	// (clone3 with CLONE_INTO_CGROUP), so that its descendants can be
	// killed as a whole.
	Cgroup *Cgroup
	// Watchdog, when set, is told of every leader Start starts and Run
	// reaps, and is started anew by Run when it dies.
	Watchdog *Watchdog

	mu      sync.Mutex
	leaders map[int]*Process
	// shims runs the goroutines that read the exec shims' reports.
	shims sync.WaitGroup
}

// Start starts the process described by s as the leader of a new process
// group, in r.Cgroup when set, and returns once it is forked: it does not
// wait for the program's own start-up. An error starting it is a
// *StartError naming s.Path. A process with ListenNames runs the exec shim
// first (the re-executed supervisor binary, which sets LISTEN_PID); when
// the shim cannot execute s.Path, the process exits with status 127 and its
// Exit carries the *StartError that says why (StartErr).
func (r *Reaper) Start(s Spec) (*Process, error) {
	fail := func(op string, err error) (*Process, error) {
		return nil, newStartError(&s, op, err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail("start", err)
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
	if r.Cgroup != nil {
		attr.UseCgroupFD = true
		attr.CgroupFD = r.Cgroup.fd()
	}
	path, env := s.Path, withSupervisorEnv(s.Env)
	var errPipe *os.File
	if len(s.ListenNames) > 0 {
		// The shim starts with this process's identity and drops to
		// s.Credential itself, just before it executes s.Path: the user
		// may not be allowed to execute this binary.
		rd, wr, err := os.Pipe()
		if err != nil {
			return fail("start", err)
		}
		defer wr.Close() // the shim holds its copy
		errPipe = rd
		files = append(files, wr)
		env = append(env,
			"LISTEN_FDS="+strconv.Itoa(len(s.ListenNames)),
			"LISTEN_FDNAMES="+strings.Join(s.ListenNames, ":"),
			shimEnv+"="+s.Path,
			shimErrFDEnv+"="+strconv.Itoa(len(files)-1),
			shimParentEnv+"="+strconv.Itoa(os.Getpid()))
		if c := s.Credential; c != nil {
			env = append(env, shimCredEnv+"="+formatCredential(c), shimDirEnv+"="+s.Dir)
		}
		path = "/proc/self/exe"
	} else {
		attr.Credential = s.Credential
	}
	// The table is updated under the same lock as the fork, so that Run,
	// which takes it before deciding what an exited child is, never
	// reaps a leader it does not know yet.
	r.mu.Lock()
	p, err := os.StartProcess(path, s.Argv, &os.ProcAttr{Dir: s.Dir, Env: env, Files: files, Sys: attr})
	var proc *Process
	if err == nil {
		proc = &Process{Pid: p.Pid, StartedAt: time.Now(), p: p, r: r}
		if errPipe != nil {
			proc.shimDone = make(chan struct{})
		}
		if r.leaders == nil {
			r.leaders = map[int]*Process{}
		}
		r.leaders[p.Pid] = proc
		if r.Watchdog != nil {
			r.Watchdog.add(p.Pid)
		}
	}
	r.mu.Unlock()
	if err != nil {
		if errPipe != nil {
			errPipe.Close()
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail("fork/exec", err)
	}
	if errPipe != nil {
		// The shim's report comes after its Go runtime started, some
		// milliseconds later: Start does not wait for it (a supervisor
		// starting many workers would stall), the report is read here
		// and handed over with the process's exit.
		r.shims.Go(func() {
			defer close(proc.shimDone)
			if err := readShimError(errPipe, &s); err != nil {
				proc.shimErr = newStartError(&s, "exec", err)
			}
		})
	}
	return proc, nil
}

// readShimError reads the pipe of an exec shim until it executed the
// program (end of file: the pipe is close-on-exec) or exited after it
// reported why it could not, in one write; it closes the pipe. s is the
// Spec the shim was started for.
func readShimError(rd *os.File, s *Spec) error {
	defer rd.Close()
	buf := make([]byte, 128)
	n, _ := rd.Read(buf)
	if n == 0 {
		return nil
	}
	return decodeShimError(string(buf[:n]), s)
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

// Run waits for every child of this process as it exits, worker or
// re-parented orphan, and sends each to out; the watchdog's death is not
// sent but answered with a new watchdog. It returns when ctx is done. Only
// one Run may be active in a process, and nothing else in the process may
// wait for children while it is.
func (r *Reaper) Run(ctx context.Context, out chan<- Exit) {
	defer r.shims.Wait()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	// A safety net: SIGCHLD may have been delivered before Notify.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			ex, own, ok := r.reapOne()
			if !ok {
				break
			}
			if own {
				continue
			}
			select {
			case out <- ex:
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

// reapOne reaps one exited child, if there is one. own says it was the
// watchdog, which has been replaced.
func (r *Reaper) reapOne() (ex Exit, own, ok bool) {
	pid, err := exitedChild()
	if err != nil || pid <= 0 {
		return Exit{}, false, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	leader := r.leaders[pid]
	if leader != nil {
		// The leader is a zombie: its group id cannot have been reused,
		// so the group is still the worker's.
		_ = killGroup(pid)
		leader.reaped = true
		delete(r.leaders, pid)
		if r.Watchdog != nil {
			r.Watchdog.remove(pid)
		}
	}
	var st unix.WaitStatus
	for {
		var got int
		got, err = unix.Wait4(pid, &st, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got != pid {
			// Someone else reaped it after all; the next peek moves on.
			return Exit{}, true, true
		}
		break
	}
	ex = Exit{Pid: pid, Status: st, Time: time.Now()}
	if leader != nil && leader.shimDone != nil {
		// The process is gone, so is the write end of its shim's pipe:
		// the report, if any, is read already or about to be.
		<-leader.shimDone
		ex.StartErr = leader.shimErr
	}
	// What the kill hit dies or waits to be reaped: still in the group.
	ex.GroupKilled = leader != nil && groupAlive(pid)
	if r.Watchdog != nil && r.Watchdog.exited(pid) {
		return ex, true, true
	}
	return ex, false, true
}

// sigchldPidOffset is where si_pid sits in a siginfo_t: the union that
// follows three ints is pointer-aligned.
const sigchldPidOffset = (3*4 + unsafe.Alignof(uintptr(0)) - 1) &^ (unsafe.Alignof(uintptr(0)) - 1)

// exitedChild returns the pid of a child that has exited, leaving it
// unreaped (waitid WNOWAIT), or 0 when none has.
func exitedChild() (int, error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), sigchldPidOffset))), nil
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
