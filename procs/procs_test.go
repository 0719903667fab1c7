package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// The test binary doubles as the supervisor binary that Start re-executes
// (the exec shim, the watchdog, the cgroup probe).
func TestMain(m *testing.M) {
	ExecShim()
	goleak.VerifyTestMain(m)
}

func TestLinePrefixer(t *testing.T) {
	var out testkit.Buffer
	lp, w, err := NewOutputPipe("web/3 | ", &out)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { lp.Run(); close(done) }()
	long := strings.Repeat("x", maxLine+10)
	for _, s := range []string{"one\n", "tw", "o\n", "\n", long + "\n", "last, no newline"} {
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	<-done
	want := "web/3 | one\nweb/3 | two\nweb/3 | \n" +
		"web/3 | " + long[:maxLine] + "\nweb/3 | " + long[maxLine:] + "\n" +
		"web/3 | last, no newline\n"
	if got := out.String(); got != want {
		t.Errorf("got %d bytes:\n%.300q\nwant %d bytes:\n%.300q", len(got), got, len(want), want)
	}
}

func TestLinePrefixerCloseUnblocks(t *testing.T) {
	lp, w, err := NewOutputPipe("x | ", &testkit.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // a writer that never closes, like a detached grandchild
	go lp.Run()
	lp.Close()
	select {
	case <-lp.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not stop Run")
	}
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
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// The shell starts a sleep in its own group, prints its pid and waits.
	r := &Reaper{}
	p, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "sleep 3600 & echo $!; wait"}, Dir: "/", Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
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
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := &Reaper{}
	// The leader leaves a sleep behind in its group, says its pid, exits.
	p, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "sleep 3600 >/dev/null & echo $!"}, Dir: "/", Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
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

// TestStartErrorNamesProgram: a program that cannot be started gives a
// *StartError that names it, by path and argv[0], never the supervisor's
// binary that the exec shim re-executes, and wraps the cause, with or
// without the shim: a missing program, one that is not executable, and a
// user that cannot be switched to (uid 4294967295 is (uid_t)-1, which
// setuid refuses).
func TestStartErrorNamesProgram(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-program")
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badUser := &syscall.Credential{Uid: 1<<32 - 1, Gid: 65534}
	for _, tc := range []struct {
		name  string
		path  string
		cred  *syscall.Credential
		cause error
		text  string // the error's text after the program's name
	}{
		{"missing", missing, nil, fs.ErrNotExist, "no such file or directory"},
		{"not executable", plain, nil, fs.ErrPermission, "permission denied"},
		{"bad user", "/bin/true", badUser, syscall.EINVAL, "invalid argument"},
	} {
		for _, shim := range []bool{false, true} {
			op, text := "fork/exec", tc.text
			if shim {
				op = "exec"
				if tc.cred != nil {
					text = "setuid 4294967295: " + text
				}
			}
			t.Run(fmt.Sprintf("%s/shim=%v", tc.name, shim), func(t *testing.T) {
				if tc.cred != nil && os.Geteuid() != 0 {
					t.Skip("needs root: setgroups comes before setuid")
				}
				s := Spec{Path: tc.path, Argv: []string{"prog", "arg"}, Dir: "/", Credential: tc.cred}
				if shim {
					s.ExtraFiles, s.ListenNames = []*os.File{sock}, []string{"web"}
				}
				err := startErr(t, s, shim)
				var se *StartError
				if !errors.As(err, &se) || se.Op != op || se.Path != tc.path || se.Argv0 != "prog" || !errors.Is(err, tc.cause) {
					t.Fatalf("Start = %v (%#v), want a *StartError %q for %s, argv[0] prog, wrapping %v", err, err, op, tc.path, tc.cause)
				}
				if want := op + " " + tc.path + ` (argv[0] "prog"): ` + text; err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
			})
		}
	}
}

// startErr starts s with a Reaper of its own and returns its start error:
// Start's, or, through the exec shim, the one its exit carries (the shim
// reports it without holding Start up, and exits 127).
func startErr(t *testing.T, s Spec, shim bool) error {
	t.Helper()
	r := &Reaper{}
	p, err := r.Start(s)
	if !shim || err != nil {
		if shim {
			t.Fatalf("Start through the shim = %v, want the error with the exit", err)
		}
		return err
	}
	defer p.Release()
	ex := reapUntil(t, r, p.Pid)
	if ex.Status.ExitStatus() != 127 {
		t.Errorf("the shim exited with %v, want status 127", ex)
	}
	return ex.StartErr
}

// TestShimDropsPrivileges: as root, the shim runs as root (the worker's user
// may not be allowed to execute the supervisor's binary) and drops to the
// worker's credentials just before it executes the program, which sees
// LISTEN_PID equal to its pid; a program that user cannot execute, or a
// working directory it cannot enter, is a start error naming the program.
func TestShimDropsPrivileges(t *testing.T) {
	testkit.NeedRoot(t, "to drop privileges")
	if os.Getenv("PROCS_TEST_RERUN") != t.Name() {
		// Run from a copy only root may execute, in a directory only
		// root may search, as `go install` leaves paddock in
		// /root/go/bin under umask 077.
		private := filepath.Join(t.TempDir(), "private")
		if err := os.Mkdir(private, 0o700); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(private, "procs.test")
		testkit.CopyBinary(t, bin, 0o700)
		rerun(t, "from "+bin, bin, nil)
		return
	}
	if fi, err := os.Stat(os.Args[0]); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the test binary has mode %v (%v), want 0700", fi.Mode(), err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}

	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := &Reaper{}
	p, err := r.Start(Spec{
		Path: "/bin/sh", Argv: []string{"sh", "-c", `echo "$(id -u) $(id -g) $LISTEN_PID $$ $LISTEN_FDS"`}, Dir: "/",
		Stdout: w, ExtraFiles: []*os.File{sock}, ListenNames: []string{"web"}, Credential: nobody,
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	out, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("65534 65534 %d %d 1\n", p.Pid, p.Pid)
	if string(out) != want {
		t.Errorf("the worker says %q, want %q (uid gid LISTEN_PID pid LISTEN_FDS)", out, want)
	}
	if ex := reapUntil(t, r, p.Pid); !ex.Success() {
		t.Errorf("worker %v", ex)
	}

	private := filepath.Join(t.TempDir(), "prog") // in a 0700 directory
	if err := os.WriteFile(private, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	startErr := func(s Spec) error {
		t.Helper()
		p, err := r.Start(s)
		if err != nil {
			t.Fatalf("Start through the shim = %v, want the error with the exit", err)
		}
		return reapUntil(t, r, p.Pid).StartErr
	}
	err = startErr(Spec{Path: private, Argv: []string{"prog"}, Dir: "/",
		ExtraFiles: []*os.File{sock}, ListenNames: []string{"web"}, Credential: nobody})
	var se *StartError
	if !errors.As(err, &se) || se.Path != private || !errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "/proc/self/exe") {
		t.Errorf("Start = %v, want a *StartError naming %s, permission denied", err, private)
	}

	closed := t.TempDir() // 0700
	err = startErr(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "exit 0"}, Dir: closed,
		ExtraFiles: []*os.File{sock}, ListenNames: []string{"web"}, Credential: nobody})
	if want := "exec /bin/sh: chdir " + closed + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("Start = %v, want %q", err, want)
	}
}

// family starts, with r, a shell that leaves two sleeps behind: one in its
// process group, one in a session of its own (setsid); it returns the
// shell's Process and the pids of the sleeps, once they run.
func family(t *testing.T, r *Reaper) (*Process, []int) {
	t.Helper()
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	p, err := r.Start(Spec{Path: "/bin/sh", Dir: "/", Stdout: w, Env: []string{"PATH=/usr/bin:/bin"},
		Argv: []string{"sh", "-c", "sleep 300 >/dev/null & echo $!; setsid sleep 301 >/dev/null & echo $!; exec sleep 302 >/dev/null"}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("family said %q", b)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("family said %q", b)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return p, pids
}

// runReaper runs r until the test ends.
func runReaper(t *testing.T, r *Reaper) <-chan Exit {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exits := make(chan Exit, 64)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx, exits) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return exits
}

func newCgroup(t *testing.T) *Cgroup {
	t.Helper()
	cg, err := CreateCgroup()
	if err != nil {
		t.Skipf("no cgroup v2 of our own here: %v", err)
	}
	t.Cleanup(func() { _, _ = cg.Kill(); _ = cg.Remove() })
	return cg
}

// TestCgroupHoldsEveryDescendant: processes started in the cgroup, and
// their descendants in other sessions, are killed with it; it is removed.
func TestCgroupHoldsEveryDescendant(t *testing.T) {
	cg := newCgroup(t)
	r := &Reaper{Cgroup: cg}
	exits := runReaper(t, r)
	p, pids := family(t, r)
	for _, pid := range append(pids, p.Pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil || !strings.Contains(cg.Path, strings.TrimSpace(strings.TrimPrefix(string(b[strings.LastIndex(string(b), "0::"):]), "0::"))) {
			t.Errorf("pid %d is in cgroup %q (%v), want %s", pid, b, err, cg.Path)
		}
	}
	n, err := cg.Kill()
	if err != nil || n != 3 {
		t.Errorf("Kill = %d, %v; want 3 processes", n, err)
	}
	for _, pid := range pids {
		waitDead(t, pid, "a descendant in the cgroup")
	}
	for ex := range exits {
		if ex.Pid == p.Pid {
			break
		}
	}
	if err := cg.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cgroup %s left behind: %v", cg.Path, err)
	}
}

// TestWatchdogKillsWhenSupervisorGone: when its pipe ends without "done",
// the watchdog kills the recorded groups and, without a cgroup, the
// processes carrying the supervisor's marker; with a cgroup, the cgroup,
// which it removes.
func TestWatchdogKillsWhenSupervisorGone(t *testing.T) {
	for _, withCgroup := range []bool{false, true} {
		t.Run(map[bool]string{false: "marker", true: "cgroup"}[withCgroup], func(t *testing.T) {
			r := &Reaper{}
			if withCgroup {
				r.Cgroup = newCgroup(t)
			}
			wd, err := StartWatchdog(WatchdogOptions{Cgroup: r.Cgroup, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			r.Watchdog = wd
			runReaper(t, r)
			p, pids := family(t, r)
			// As if the supervisor died: the pipe ends without "done".
			wd.mu.Lock()
			wd.stopped = true // not replaced when it exits
			wd.pipe.Close()
			wd.pipe = nil
			wd.mu.Unlock()
			for _, pid := range append(pids, p.Pid) {
				waitDead(t, pid, "a worker's process")
			}
			if withCgroup {
				deadline := time.Now().Add(30 * time.Second)
				for {
					if _, err := os.Stat(r.Cgroup.Path); errors.Is(err, fs.ErrNotExist) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the watchdog did not remove cgroup %s", r.Cgroup.Path)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

// TestWatchdogReplaced: a watchdog that dies is replaced, and the new one
// knows every group.
func TestWatchdogReplaced(t *testing.T) {
	r := &Reaper{}
	wd, err := StartWatchdog(WatchdogOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.Watchdog = wd
	runReaper(t, r)
	// Plain sleeps in the leader's group: not marked, so that only the
	// group table can find them.
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	p, err := r.Start(Spec{Path: "/bin/sh", Dir: "/", Stdout: w, Env: []string{"PATH=/usr/bin:/bin"},
		Argv: []string{"sh", "-c", "env -u " + supervisorEnvName + " sleep 300 >/dev/null & echo $!; exec sleep 302 >/dev/null"}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	b, _ := io.ReadAll(rd)
	left, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("leader said %q", b)
	}
	defer syscall.Kill(left, syscall.SIGKILL)

	first := wd.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for wd.Pid() == first || wd.Pid() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog was not replaced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wd.mu.Lock()
	wd.stopped = true
	wd.pipe.Close()
	wd.pipe = nil
	wd.mu.Unlock()
	waitDead(t, left, "a process in a worker's group")
	waitDead(t, p.Pid, "the worker")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

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
