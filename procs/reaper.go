package procs

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reaper starts processes and reaps every child of this process as it
// exits (or, with OwnChildrenOnly, only the processes it started). It
// keeps a table of the process group leaders it started: when a leader
// exits, whatever is left in its process group is killed before the
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
	// OwnChildrenOnly makes Run reap only the processes Start started and
	// the Watchdog, each by its pid, instead of every child of this
	// process. It is for a process where something else waits for
	// children too: several Reapers in one process (tests), a program
	// that embeds the supervisor and runs commands of its own (exec.Cmd).
	// The price: orphans re-parented to this process (a subreaper, or PID
	// 1) are not reaped and stay zombies, so paddock itself leaves it
	// false and reaps every child.
	OwnChildrenOnly bool

	mu      sync.Mutex
	leaders map[int]*Process
	// shims runs the goroutines that read the exec shims' reports.
	shims sync.WaitGroup
}

// Start starts the process described by s as the leader of a new process
// group, in r.Cgroup when set, and returns once it is forked: it does not
// wait for the program's own start-up. An error starting it is a
// *StartError naming s.Path. A process with ListenNames or PIDEnv runs the
// exec shim first (the re-executed supervisor binary, which sets
// LISTEN_PID and the PIDEnv variables to the process's pid); when
// the shim cannot execute s.Path, the process exits with status 127 and its
// Exit carries the *StartError that says why (StartErr).
func (r *Reaper) Start(s Spec) (*Process, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, newStartError(&s, "start", err)
	}
	defer devnull.Close()
	orNull := func(f *os.File) *os.File {
		if f == nil {
			return devnull
		}
		return f
	}
	attr := &os.ProcAttr{
		Dir:   s.Dir,
		Env:   withSupervisorEnv(s.Env),
		Files: append([]*os.File{devnull, orNull(s.Stdout), orNull(s.Stderr)}, s.ExtraFiles...),
		Sys:   r.sysProcAttr(),
	}
	path := s.Path
	var errPipe *os.File
	if len(s.ListenNames) > 0 || len(s.PIDEnv) > 0 {
		// The shim starts with this process's identity and drops to
		// s.Credential itself, just before it executes s.Path: the user
		// may not be allowed to execute this binary.
		rd, wr, err := os.Pipe()
		if err != nil {
			return nil, newStartError(&s, "start", err)
		}
		defer wr.Close() // the shim holds its copy
		errPipe = rd
		attr.Files = append(attr.Files, wr)
		attr.Env = append(attr.Env, shimEnvOf(&s, len(attr.Files)-1)...)
		path = "/proc/self/exe"
	} else {
		attr.Sys.Credential = s.Credential
	}
	proc, err := r.fork(path, s.Argv, attr, errPipe != nil)
	if err != nil {
		if errPipe != nil {
			errPipe.Close()
		}
		return nil, newStartError(&s, "fork/exec", err)
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

// sysProcAttr returns the attributes of every process Start starts: a
// process group of its own, SIGKILL when the supervisor dies, and r.Cgroup
// when set.
func (r *Reaper) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if r.Cgroup != nil {
		attr.UseCgroupFD = true
		attr.CgroupFD = r.Cgroup.fd()
	}
	return attr
}

// fork starts path and records the process as a leader; shim says the
// process is an exec shim whose report is awaited (Process.shimDone). The
// error is the cause alone, not the *os.PathError that names path.
func (r *Reaper) fork(path string, argv []string, attr *os.ProcAttr, shim bool) (*Process, error) {
	// The table is updated under the same lock as the fork, so that Run,
	// which takes it before deciding what an exited child is, never
	// reaps a leader it does not know yet.
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, err
	}
	proc := &Process{Pid: p.Pid, StartedAt: time.Now(), p: p, r: r}
	if shim {
		proc.shimDone = make(chan struct{})
	}
	if r.leaders == nil {
		r.leaders = map[int]*Process{}
	}
	r.leaders[p.Pid] = proc
	if r.Watchdog != nil {
		r.Watchdog.add(p.Pid)
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

// Run waits for every child of this process as it exits, worker or
// re-parented orphan, and sends each to out; the watchdog's death is not
// sent but answered with a new watchdog. It returns when ctx is done. Only
// one Run may be active in a process, and nothing else in the process may
// wait for children while it is, unless OwnChildrenOnly is set: then Run
// waits only for the processes r started and its watchdog, and any number
// of such Runs (one per Reaper) and other waiters may share the process.
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
	pid, err := r.exitedChild()
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

// exitedChild returns the pid of a child that has exited and is Run's to
// reap, leaving it unreaped, or 0 when none has: any child, or with
// OwnChildrenOnly one of the leaders r started or its watchdog.
func (r *Reaper) exitedChild() (int, error) {
	if !r.OwnChildrenOnly {
		return peekExited(unix.P_ALL, 0)
	}
	// The pids are taken under the lock, peeked without it: a leader
	// started meanwhile is peeked at the next SIGCHLD, which its exit
	// sends.
	r.mu.Lock()
	pids := make([]int, 0, len(r.leaders)+1)
	for pid := range r.leaders {
		pids = append(pids, pid)
	}
	r.mu.Unlock()
	if r.Watchdog != nil {
		if pid := r.Watchdog.Pid(); pid > 0 {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		// An error (ECHILD: the watchdog was reaped by Watchdog.Stop)
		// concerns that pid alone.
		if got, err := peekExited(unix.P_PID, pid); err == nil && got == pid {
			return pid, nil
		}
	}
	return 0, nil
}

// peekExited returns the pid of a child that has exited, among those
// waitid's idtype and id select, leaving it unreaped (waitid WNOWAIT), or
// 0 when none has.
func peekExited(idtype, id int) (int, error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(idtype, id, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), sigchldPidOffset))), nil
	}
}
