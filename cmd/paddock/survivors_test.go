package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGKILLLeavesNoDescendant: after kill -9 of paddock, nothing its
// workers started runs any more (plain children in the worker's group,
// children that called setsid, a wrapper's server holding the listening
// socket), and the next paddock binds the same port. Each mechanism alone:
// the workers' cgroup (with the watchdog that kills it), the watchdog
// without a cgroup (process groups and the PADDOCK_SUPERVISOR marker), and
// the kernel's rule for PID 1 of a PID namespace (no cgroup, no watchdog).
func TestSIGKILLLeavesNoDescendant(t *testing.T) {
	t.Parallel()
	unshare, _ := exec.LookPath("unshare")
	for _, mode := range []string{"cgroup", "watchdog", "pid1", "pid1 user namespace"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			manifest, pidfile := familyManifest(t, port)
			var r *running
			switch mode {
			case "cgroup":
				r = startPaddock(t, manifest)
			case "watchdog":
				r = startPaddockArgs(t, "run", "--log-format", "json", "--cgroup", "off", manifest)
			case "pid1":
				if unshare == "" || os.Geteuid() != 0 {
					t.Skip("needs root and unshare(1) to create a PID namespace")
				}
				r = startPaddockCmd(t, exec.Command(unshare, "--pid", "--fork", "--kill-child",
					paddockBin, "run", "--log-format", "json", manifest))
			case "pid1 user namespace":
				// As a rootless container runs it: see TestAsPID1.
				if unshare == "" {
					t.Skip("needs unshare(1) to create a PID namespace")
				}
				manifest, pidfile = publicFamilyManifest(t, port)
				sock := unprivilegedDirs(t, manifest)
				r = startPaddockCmd(t, unprivileged(t, unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
					paddockBin, "run", "--log-format", "json", "--socket", sock, manifest))
			}
			fam := readFamily(t, pidfile, familyProcs)
			// paddock logs how it guards its workers before it forks one:
			// once the fork is in the log, that record is too.
			r.workerPIDs(1)
			var cgroup string
			switch mode {
			case "cgroup":
				var ok bool
				if cgroup, ok = r.logValue("workers run in a cgroup of their own", "cgroup"); !ok {
					r.mu.Lock()
					t.Skipf("paddock created no cgroup here: %v", r.logs)
				}
			case "pid1", "pid1 user namespace":
				if !r.logged("running as PID 1: when paddock exits or dies, the kernel ends every process of its PID namespace; no cgroup or watchdog is needed") {
					t.Fatal("paddock did not say it runs as PID 1")
				}
			default:
				if r.logged("workers run in a cgroup of their own") {
					t.Fatal("--cgroup off made a cgroup")
				}
			}
			target := r.cmd.Process.Pid
			if strings.HasPrefix(mode, "pid1") {
				target = childOf(r.cmd.Process.Pid) // unshare forked paddock
			}
			if err := syscall.Kill(target, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			fam.waitNoSurvivors(t)
			if cgroup != "" {
				deadline := time.Now().Add(patience)
				for {
					if _, err := os.Stat(cgroup); errors.Is(err, fs.ErrNotExist) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("cgroup %s left behind", cgroup)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			bindsAgain(t, port)
		})
	}
}

// watchdogOf returns the pid of paddock's watchdog, a child of paddock
// whose environment has PADDOCK_WATCHDOG, other than not; it waits for one.
func watchdogOf(t *testing.T, paddock, not int) int {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		for _, pid := range children(paddock) {
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if pid != not && strings.Contains("\x00"+string(env), "\x00PADDOCK_WATCHDOG=") && !dead(pid) {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("paddock %d has no watchdog (other than %d)", paddock, not)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchdogReplacedKeepsGuarantee: a watchdog killed is replaced, told
// the whole table, and nothing survives a kill -9 of paddock afterwards.
func TestWatchdogReplacedKeepsGuarantee(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cgroup", "watchdog"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			manifest, pidfile := familyManifest(t, port)
			args := []string{"run", "--log-format", "json", manifest}
			if mode == "watchdog" {
				args = append(args, "--cgroup", "off")
			}
			r := startPaddockArgs(t, args...)
			fam := readFamily(t, pidfile, familyProcs)
			first := watchdogOf(t, r.cmd.Process.Pid, 0)
			if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			watchdogOf(t, r.cmd.Process.Pid, first)
			deadline := time.Now().Add(patience)
			for !r.logged("the watchdog died; starting a new one") {
				if time.Now().After(deadline) {
					t.Fatal("paddock did not log the watchdog's death")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := r.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			fam.waitNoSurvivors(t)
			bindsAgain(t, port)
		})
	}
}

// TestCleanStopEmptiesCgroup: at a clean stop, what the workers left in
// their cgroup (here, children that called setsid) is killed, logged, and
// the cgroup removed.
func TestCleanStopEmptiesCgroup(t *testing.T) {
	t.Parallel()
	manifest, pidfile := familyManifest(t, freePort(t))
	r := startPaddock(t, manifest)
	fam := readFamily(t, pidfile, familyProcs)
	r.workerPIDs(1) // the cgroup's record comes before the fork's
	cgroup, ok := r.logValue("workers run in a cgroup of their own", "cgroup")
	if !ok {
		t.Skip("paddock created no cgroup here")
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	fam.waitNoSurvivors(t)
	r.mu.Lock()
	var killed float64
	for _, m := range r.logs {
		if m["msg"] == "killed processes left in the workers' cgroup" {
			killed, _ = m["processes"].(float64)
		}
	}
	r.mu.Unlock()
	// The holder and the two sleepers that called setsid, and perhaps
	// the sleepers of the worker's group, killed with it but not yet gone.
	if killed < 3 || killed > familyProcs-1 {
		t.Errorf("paddock logged %v processes killed in the cgroup, want 3 to %d", killed, familyProcs-1)
	}
	if _, err := os.Stat(cgroup); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cgroup %s left behind: %v", cgroup, err)
	}
}
