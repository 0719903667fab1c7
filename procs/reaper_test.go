package procs

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// The test binary doubles as the supervisor binary that Start re-executes
// (the exec shim, the watchdog, the cgroup probe).
func TestMain(m *testing.M) {
	ExecShim()
	goleak.VerifyTestMain(m)
}

// reapUntil runs r and returns the first exit of pid.
func reapUntil(t *testing.T, r *Reaper, pid int) Exit {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exits := make(chan Exit, 8)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx, exits) })
	defer func() { cancel(); wg.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case ex := <-exits:
			if ex.Pid == pid {
				return ex
			}
		case <-deadline:
			t.Fatalf("pid %d not reaped", pid)
		}
	}
}

func TestStartAndReap(t *testing.T) {
	r := &Reaper{}
	p, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "exit 7"}, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	ex := reapUntil(t, r, p.Pid)
	if ex.Success() || !ex.Status.Exited() || ex.Status.ExitStatus() != 7 || ex.String() != "exit code 7" {
		t.Errorf("exit %v, want exit code 7", ex)
	}
	// Signalling a reaped process is not an error.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after exit: %v", err)
	}
}

func TestKillGroupReachesGrandchildren(t *testing.T) {
	// The shell starts a sleep in its own group, prints its pid and waits.
	r := &Reaper{}
	p, rd := startShell(t, r, "sleep 3600 & echo $!; wait")
	buf := make([]byte, 32)
	n, err := rd.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if pgid, err := syscall.Getpgid(p.Pid); err != nil || pgid != p.Pid {
		t.Fatalf("worker pgid %d (%v), want %d", pgid, err, p.Pid)
	}
	if !groupAlive(p.Pid) {
		t.Fatal("group not alive")
	}
	if err := p.KillGroup(); err != nil {
		t.Fatal(err)
	}
	ex := reapUntil(t, r, p.Pid)
	if !ex.Status.Signaled() || ex.Status.Signal() != syscall.SIGKILL {
		t.Errorf("exit %v, want SIGKILL", ex)
	}
	grandchild := strings.TrimSpace(string(buf[:n]))
	deadline := time.Now().Add(60 * time.Second)
	for {
		// The grandchild was re-parented (to init or a subreaper) and
		// killed; it is gone or a zombie.
		b, err := os.ReadFile("/proc/" + grandchild + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %s survived the group kill", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKillGroupRefusesLowGroups(t *testing.T) {
	for _, pgid := range []int{-1, 0, 1} {
		if err := killGroup(pgid); err == nil {
			t.Errorf("killGroup(%d) did not refuse", pgid)
		}
	}
	if groupAlive(0) {
		t.Error("groupAlive(0) = true")
	}
}

// TestLeftoversKilledBeforeLeaderReaped: a leader that exits leaving a
// process in its group is reaped only after that process was sent SIGKILL,
// and the Exit says so.
func TestLeftoversKilledBeforeLeaderReaped(t *testing.T) {
	r := &Reaper{}
	// The leader leaves a sleep behind in its group, says its pid, exits.
	p, rd := startShell(t, r, "sleep 3600 >/dev/null & echo $!")
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	left, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("leader said %q", b)
	}
	ex := reapUntil(t, r, p.Pid)
	if !ex.GroupKilled {
		t.Errorf("exit %+v: GroupKilled not set although sleep %d was left in the group", ex, left)
	}
	waitDead(t, left, "the sleep left in the exited leader's group")
	// The reaped leader's group is not signalled any more.
	if err := p.KillGroup(); err != nil {
		t.Errorf("KillGroup after reaping: %v", err)
	}
}

// waitDead waits until pid is gone or a zombie.
func waitDead(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still alive", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inPIDNamespace runs the calling test again, alone, as PID 1 of a new PID
// namespace, where only it forks, so that it can make the kernel hand out a
// pid of its choice (ns_last_pid). It returns true in that run, false in
// the outer one (which fails if the inner one did, and skips without root).
func inPIDNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv("PROCS_TEST_RERUN") == t.Name() {
		return true
	}
	testkit.NeedRoot(t, "to create a PID namespace and choose pids in it")
	rerun(t, "in a new PID namespace", os.Args[0], &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL})
	return false
}

// rerun runs the calling test alone in binary bin (the test binary or a
// copy) with attr, and fails if it does not pass there.
func rerun(t *testing.T, how, bin string, attr *syscall.SysProcAttr) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "PROCS_TEST_RERUN="+t.Name())
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s: %v\n%s", how, err, out)
	}
	t.Logf("%s:\n%s", how, out)
}

// startAtPID starts, with r, a sleep whose pid (and so process group id) is
// want: the pid is free, and ns_last_pid makes it the next one handed out
// in this namespace, unless a thread of this process takes it first.
func startAtPID(t *testing.T, r *Reaper, want int) *Process {
	t.Helper()
	for range 100 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0); err != nil {
			t.Fatal(err)
		}
		p, err := r.Start(Spec{Path: "/bin/sleep", Argv: []string{"sleep", "3600"}, Dir: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if p.Pid == want {
			return p
		}
		_ = p.KillGroup()
	}
	t.Fatalf("could not start a process with pid %d", want)
	return nil
}

// TestKillGroupAfterReapSparesReusedGroup: once a leader was reaped, its
// Process.KillGroup signals nothing, not even a new process group that
// reuses the id.
func TestKillGroupAfterReapSparesReusedGroup(t *testing.T) {
	if !inPIDNamespace(t) {
		return
	}
	r := &Reaper{}
	ctx, cancel := context.WithCancel(context.Background())
	exits := make(chan Exit, 64)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx, exits) })
	defer func() { cancel(); wg.Wait() }()
	waitExit := func(pid int) Exit {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ex := <-exits:
				if ex.Pid == pid {
					return ex
				}
			case <-deadline:
				t.Fatalf("pid %d not reaped", pid)
			}
		}
	}

	old, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "exit 0"}, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	waitExit(old.Pid)
	// The pid and group id of the reaped leader, reused.
	reuser := startAtPID(t, r, old.Pid)
	if pgid, err := syscall.Getpgid(reuser.Pid); err != nil || pgid != old.Pid {
		t.Fatalf("the new process's group is %d (%v), want %d", pgid, err, old.Pid)
	}
	if err := old.KillGroup(); err != nil {
		t.Errorf("KillGroup of a reaped leader: %v", err)
	}
	// Had the group kill reached it, it would die of SIGKILL, not of the
	// SIGTERM sent now.
	if err := reuser.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(reuser.Pid)
	if !ex.Status.Signaled() || ex.Status.Signal() != syscall.SIGTERM {
		t.Errorf("the process that reused group %d ended with %v, want signal SIGTERM", old.Pid, ex)
	}
}

// startShell starts, with r, /bin/sh running script with its stdout on a
// pipe, and returns the process and the pipe's read end; both are released
// when the test ends.
func startShell(t *testing.T, r *Reaper, script string) (*Process, *os.File) {
	t.Helper()
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	p, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", script}, Dir: "/", Stdout: w,
		Env: []string{"PATH=/usr/bin:/bin"}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	return p, rd
}
