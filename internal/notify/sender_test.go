package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// sendBarrier is the NOTIFY_TEST_BARRIER sender: it sends READY=1, then
// BARRIER=1 with the write end of a pipe, as systemd-notify does, and waits
// until the receiver closed it (end of file on the read end); it exits 3 if
// that does not happen within a generous time.
func sendBarrier() {
	if _, err := Send("READY=1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		os.Exit(1)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		os.Exit(1)
	}
	to := &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}
	if err := unix.Sendmsg(fd, []byte("BARRIER=1"), unix.UnixRights(p[1]), to, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	unix.Close(p[1])
	pfd := []unix.PollFd{{Fd: int32(p[0])}}
	n, err := unix.Poll(pfd, 30_000)
	if err != nil || n == 0 || pfd[0].Revents&unix.POLLHUP == 0 {
		fmt.Fprintln(os.Stderr, "the receiver kept the barrier's descriptor")
		os.Exit(3)
	}
}

// listenAndRun starts a socket in a new directory under parent (as
// Listen) and its Run for the test.
func listenAndRun(t *testing.T, parent string) (*Socket, <-chan Message) {
	t.Helper()
	s, err := Listen(parent)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Message, 16)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx, out) })
	t.Cleanup(func() { cancel(); wg.Wait(); s.Close() })
	return s, out
}

func next(t *testing.T, out <-chan Message) Message {
	t.Helper()
	select {
	case m := <-out:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message")
		return Message{}
	}
}

// TestBarrierReleased: a sender that passes a descriptor and waits for it
// to be closed (BARRIER=1, as systemd-notify does) is released, and no
// descriptor received stays open here.
func TestBarrierReleased(t *testing.T) {
	before := testkit.NumFDs(t)
	s, out := listenAndRun(t, t.TempDir())
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path(), "NOTIFY_TEST_BARRIER=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sender: %v\n%s", err, b)
	}
	if m := next(t, out); !m.Ready() || m.PID != cmd.Process.Pid {
		t.Errorf("first message %+v, want READY=1 from %d", m, cmd.Process.Pid)
	}
	if m := next(t, out); m.Fields["BARRIER"] != "1" {
		t.Errorf("second message %+v, want BARRIER=1", m)
	}
	after := testkit.NumFDs(t)
	// The socket is the one descriptor more.
	if after != before+1 {
		t.Errorf("%d descriptors open before, %d after receiving (socket included): a received one was kept", before, after)
	}
}

// TestSystemdNotify: Debian's systemd-notify --ready (which sends READY=1,
// then BARRIER=1 with a descriptor, and waits up to 5 s for it to be
// closed, failing otherwise) is served and succeeds.
func TestSystemdNotify(t *testing.T) {
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify is not installed")
	}
	s, out := listenAndRun(t, t.TempDir())
	cmd := exec.Command(bin, "--ready")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-notify --ready: %v\n%s", err, b)
	}
	if m := next(t, out); !m.Ready() {
		t.Errorf("first message %+v, want READY=1", m)
	}
}

// TestSenderGroup: a live sender's process group is reported.
func TestSenderGroup(t *testing.T) {
	s, out := listenAndRun(t, t.TempDir())
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path(), "NOTIFY_TEST_SEND=READY=1", "NOTIFY_TEST_HOLD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	m := next(t, out)
	if m.PID != cmd.Process.Pid || m.PGID != cmd.Process.Pid || m.Reaped {
		t.Errorf("message %+v, want pid and pgid %d, not reaped", m, cmd.Process.Pid)
	}
}

// TestReapedSenderNotAttributed: the message of a sender reaped before it
// was read is not given the process group of whatever process reused its
// pid. Run as PID 1 of a PID namespace of its own, where the test can have
// the kernel hand out the sender's pid again.
func TestReapedSenderNotAttributed(t *testing.T) {
	if os.Getenv("NOTIFY_TEST_PIDNS") != t.Name() {
		testkit.NeedRoot(t, "to create a PID namespace and choose pids in it")
		cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "NOTIFY_TEST_PIDNS="+t.Name())
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "--- PASS: "+t.Name()) {
			t.Fatalf("in a new PID namespace: %v\n%s", err, b)
		}
		t.Logf("in a new PID namespace:\n%s", b)
		return
	}
	s, err := Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.pidfds {
		t.Skip("the kernel does not pass the sender's pidfd (SCM_PIDFD, Linux 6.5)")
	}
	sender := exec.Command(os.Args[0])
	sender.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path(), "NOTIFY_TEST_SEND=READY=1")
	if b, err := sender.CombinedOutput(); err != nil { // sent, exited and reaped
		t.Fatalf("sender: %v\n%s", err, b)
	}
	pid := sender.Process.Pid
	// A new process takes the pid, leading a process group of that id.
	var reuser *exec.Cmd
	for range 100 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatal(err)
		}
		c := exec.Command("/bin/sleep", "60")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if c.Process.Pid == pid {
			reuser = c
			break
		}
		c.Process.Kill()
		c.Wait()
	}
	if reuser == nil {
		t.Fatalf("could not start a process with pid %d", pid)
	}
	defer func() { reuser.Process.Kill(); reuser.Wait() }()
	if pgid, err := unix.Getpgid(pid); err != nil || pgid != pid {
		t.Fatalf("the reuser's group is %d (%v), want %d", pgid, err, pid)
	}

	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Message, 4)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx, out) })
	defer func() { cancel(); wg.Wait() }()
	m := next(t, out)
	if m.PID != pid || m.PGID != 0 || !m.Reaped {
		t.Errorf("message %+v: want pid %d, pgid 0 (unknown), reaped", m, pid)
	}
}

// sendClaiming is the NOTIFY_TEST_CLAIM sender: it sends READY=1 to
// $NOTIFY_SOCKET with credentials (SCM_CREDENTIALS) that claim to be the
// process pid, and prints "sent", or "EPERM" when the kernel refuses the
// claim; then it sends "CLAIM=done" as itself, so that the receiver knows
// that a message the claim produced would have come first.
func sendClaiming(pid string) {
	n, err := strconv.Atoi(pid)
	if err != nil {
		os.Exit(1)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		os.Exit(1)
	}
	creds := unix.UnixCredentials(&unix.Ucred{Pid: int32(n), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})
	err = unix.Sendmsg(fd, []byte("READY=1"), creds, &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}, 0)
	switch {
	case err == nil:
		fmt.Println("sent")
	case errors.Is(err, unix.EPERM):
		fmt.Println("EPERM")
	default:
		fmt.Println(err)
	}
	if _, err := Send("CLAIM=done"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// pidfdPID returns the pid that pidfd refers to, as /proc/self/fdinfo
// says ("Pid:"; -1 once the process was reaped).
func pidfdPID(t *testing.T, pidfd int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", pidfd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no Pid: line in the fdinfo of pidfd %d:\n%s", pidfd, b)
	return 0
}

// TestForgedCredentials: a sender's credentials (SCM_CREDENTIALS) are
// what tells workers apart.
//
// A process without CAP_SYS_ADMIN (a worker running as another user, any
// process of a user that is not root) cannot claim another pid: the
// kernel refuses to send the message, and the honest one that follows is
// the first to arrive, with the sender's own pid. Run as the user nobody
// when the test runs as root, as the test's user otherwise.
//
// A process with CAP_SYS_ADMIN (root, unless a container dropped it) can
// claim any pid, and nothing in the datagram tells: the pidfd that comes
// with it (SCM_PIDFD) is the claimed process's, not the sender's, since
// Linux derives it from the credentials. A receiver cannot refuse such a
// sender; it can signal and trace the workers anyway. Should a kernel ever
// pass the real sender's pidfd, this test fails, and comparing the pidfd's
// pid with the credentials' would then make the claim visible.
func TestForgedCredentials(t *testing.T) {
	claimed := os.Getpid() // a live process that is not the sender
	t.Run("unprivileged", func(t *testing.T) {
		s, out := listenAndRun(t, "") // in os.TempDir(), where nobody reaches it
		cmd := exec.Command(os.Args[0])
		if os.Geteuid() == 0 {
			cmd = testkit.AsUser(exec.Command(testkit.PublicCopy(t, testkit.PublicDir(t))), testkit.Nobody)
		} else {
			t.Logf("not root: the sender runs as uid %d", os.Geteuid())
		}
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path(), "NOTIFY_TEST_CLAIM="+strconv.Itoa(claimed))
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("sender: %v\n%s", err, b)
		}
		if got := strings.TrimSpace(string(b)); got != "EPERM" {
			t.Errorf("claiming pid %d as an unprivileged sender: %s, want EPERM", claimed, got)
		}
		if m := next(t, out); m.PID != cmd.Process.Pid || m.Fields["CLAIM"] != "done" || m.Ready() {
			t.Errorf("first message %+v, want CLAIM=done from the sender %d (the claim refused)", m, cmd.Process.Pid)
		}
	})
	t.Run("CAP_SYS_ADMIN", func(t *testing.T) {
		testkit.NeedRoot(t, "for CAP_SYS_ADMIN")
		s, err := Listen(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !s.pidfds {
			t.Skip("the kernel does not pass the sender's pidfd (SCM_PIDFD, Linux 6.5)")
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path(), "NOTIFY_TEST_CLAIM="+strconv.Itoa(claimed))
		b, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(b)) != "sent" {
			t.Fatalf("sender: %v\n%s", err, b)
		}
		buf := make([]byte, MaxMessage)
		oob := make([]byte, 1024)
		_, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		c := parseControl(oob[:oobn])
		defer c.close()
		if c.pid != claimed || c.pidfd < 0 {
			t.Fatalf("credentials claim pid %d, pidfd %d; want the claimed %d and a pidfd", c.pid, c.pidfd, claimed)
		}
		if got := pidfdPID(t, c.pidfd); got != claimed {
			t.Errorf("the pidfd passed with a forged claim refers to pid %d, not the claimed %d (the sender is %d): "+
				"the kernel now tells a forged sender; notify should drop a message whose pidfd is not the credentials' pid",
				got, claimed, cmd.Process.Pid)
		}
	})
}
