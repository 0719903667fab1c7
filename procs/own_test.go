package procs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitZombie waits until pid has exited and is not reaped yet.
func waitZombie(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatalf("%s (pid %d) was reaped before any reaper ran: %v", what, pid, err)
		}
		if strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) did not exit", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitCode starts, with r, a shell that exits with code.
func exitCode(t *testing.T, r *Reaper, code int) *Process {
	t.Helper()
	p, err := r.Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "exit " + strconv.Itoa(code)}, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	return p
}

// TestOwnChildrenOnlyReapersShareProcess: two Reapers with OwnChildrenOnly
// in one process each get exactly the exits of the processes they started,
// and an exec.Cmd started beside them is reaped by its own Wait. The
// children have all exited before either Run starts, so a Run that reaped
// every child would take a foreign one at once.
func TestOwnChildrenOnlyReapersShareProcess(t *testing.T) {
	a, b := &Reaper{OwnChildrenOnly: true}, &Reaper{OwnChildrenOnly: true}
	pa, pb := exitCode(t, a, 7), exitCode(t, b, 8)
	before := exec.Command("/bin/sh", "-c", "exit 9")
	if err := before.Start(); err != nil {
		t.Fatal(err)
	}
	waitZombie(t, pa.Pid, "reaper a's child")
	waitZombie(t, pb.Pid, "reaper b's child")
	waitZombie(t, before.Process.Pid, "the exec.Cmd")

	ctx, cancel := context.WithCancel(context.Background())
	exitsA, exitsB := make(chan Exit, 64), make(chan Exit, 64)
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx, exitsA) })
	wg.Go(func() { b.Run(ctx, exitsB) })
	defer func() { cancel(); wg.Wait() }()

	// Reaper a starts another child while both run, and so does an
	// exec.Cmd (the "waitid: no child processes" of a test's own command).
	pa2 := exitCode(t, a, 10)
	during := exec.Command("/bin/sh", "-c", "exit 11")
	if err := during.Start(); err != nil {
		t.Fatal(err)
	}

	want := map[*Reaper]map[int]int{a: {pa.Pid: 7, pa2.Pid: 10}, b: {pb.Pid: 8}}
	name := map[*Reaper]string{a: "a", b: "b"}
	check := func(r *Reaper, ex Exit) {
		t.Helper()
		code, ok := want[r][ex.Pid]
		if !ok {
			t.Fatalf("reaper %s reaped pid %d (%v), which it did not start", name[r], ex.Pid, ex)
		}
		if !ex.Status.Exited() || ex.Status.ExitStatus() != code {
			t.Errorf("reaper %s: pid %d ended with %v, want exit code %d", name[r], ex.Pid, ex, code)
		}
		delete(want[r], ex.Pid)
	}
	deadline := time.After(60 * time.Second)
	for len(want[a])+len(want[b]) > 0 {
		select {
		case ex := <-exitsA:
			check(a, ex)
		case ex := <-exitsB:
			check(b, ex)
		case <-deadline:
			t.Fatalf("not reaped: reaper a's %v, reaper b's %v", want[a], want[b])
		}
	}
	for _, c := range []struct {
		cmd  *exec.Cmd
		code int
	}{{before, 9}, {during, 11}} {
		err := c.cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code {
			t.Errorf("exec.Cmd pid %d: Wait returned %v, want exit status %d", c.cmd.Process.Pid, err, c.code)
		}
	}
	cancel()
	wg.Wait()
	for r, exits := range map[*Reaper]chan Exit{a: exitsA, b: exitsB} {
		close(exits)
		for ex := range exits {
			t.Errorf("reaper %s sent pid %d (%v) too", name[r], ex.Pid, ex)
		}
	}
}
