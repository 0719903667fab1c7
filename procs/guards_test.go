package procs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// family starts, with r, a shell that leaves two sleeps behind: one in its
// process group, one in a session of its own (setsid); it returns the
// shell's Process and the pids of the sleeps, once they run.
func family(t *testing.T, r *Reaper) (*Process, []int) {
	t.Helper()
	p, rd := startShell(t, r, "sleep 300 >/dev/null & echo $!; setsid sleep 301 >/dev/null & echo $!; exec sleep 302 >/dev/null")
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
			watchdog := wd.proc.Pid
			wd.mu.Unlock()
			for _, pid := range append(pids, p.Pid) {
				waitDead(t, pid, "a worker's process")
			}
			// Its sweep for marked processes ends before it exits; it
			// must not reach the next test's processes.
			waitDead(t, watchdog, "the watchdog")
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
// knows every group; a Reaper with OwnChildrenOnly reaps its watchdog too.
func TestWatchdogReplaced(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run("OwnChildrenOnly="+strconv.FormatBool(own), func(t *testing.T) { testWatchdogReplaced(t, own) })
	}
}

func testWatchdogReplaced(t *testing.T, own bool) {
	r := &Reaper{OwnChildrenOnly: own}
	wd, err := StartWatchdog(WatchdogOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.Watchdog = wd
	runReaper(t, r)
	// Plain sleeps in the leader's group: not marked, so that only the
	// group table can find them.
	p, rd := startShell(t, r, "env -u "+supervisorEnvName+" sleep 300 >/dev/null & echo $!; exec sleep 302 >/dev/null")
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
	watchdog := wd.proc.Pid
	wd.mu.Unlock()
	waitDead(t, left, "a process in a worker's group")
	waitDead(t, p.Pid, "the worker")
	// Its sweep for marked processes (this test process's, the next
	// test's too) ends before it exits.
	waitDead(t, watchdog, "the watchdog")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
