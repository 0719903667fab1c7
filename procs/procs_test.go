package procs

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the supervisor binary that Start re-executes
// (the exec shim, the watchdog, the cgroup probe).
func TestMain(m *testing.M) {
	ExecShim()
	goleak.VerifyTestMain(m)
}

type buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func TestLinePrefixer(t *testing.T) {
	var out buffer
	lp, w, err := NewOutputPipe("web/3 | ", &out)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { lp.Run(); close(done) }()
	long := strings.Repeat("x", MaxLine+10)
	for _, s := range []string{"one\n", "tw", "o\n", "\n", long + "\n", "last, no newline"} {
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	<-done
	want := "web/3 | one\nweb/3 | two\nweb/3 | \n" +
		"web/3 | " + long[:MaxLine] + "\nweb/3 | " + long[MaxLine:] + "\n" +
		"web/3 | last, no newline\n"
	if got := out.b.String(); got != want {
		t.Errorf("got %d bytes:\n%.300q\nwant %d bytes:\n%.300q", len(got), got, len(want), want)
	}
}

func TestLinePrefixerCloseUnblocks(t *testing.T) {
	lp, w, err := NewOutputPipe("x | ", &buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // a writer that never closes, like a detached grandchild
	go lp.Run()
	lp.Close()
	select {
	case <-lp.Done():
	case <-time.After(10 * time.Second):
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
	deadline := time.After(20 * time.Second)
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
	p, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "sleep 60 & echo $!; wait"}, Dir: "/", Stdout: w})
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
	deadline := time.Now().Add(20 * time.Second)
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
