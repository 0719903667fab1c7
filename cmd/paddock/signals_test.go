package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			r := startPaddock(t, writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 3
`))
			pids := r.workerPIDs(3)
			if err := r.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			for _, pid := range pids {
				waitDead(t, pid)
			}
		})
	}
}

// startStubborn runs paddock with one worker that ignores SIGTERM, and
// returns once the worker ignores it: the test binary as helper stubborn,
// which creates $READY when it does.
func startStubborn(t *testing.T, killTimeout string) (*running, int) {
	t.Helper()
	manifest := writeManifest(t, fmt.Sprintf(`
apps:
  stubborn:
    exec: %s
    env: {PADDOCK_TEST_HELPER: stubborn, READY: $DIR/ignoring}
    killTimeout: %s
`, selfPath(t), killTimeout))
	r := startPaddock(t, manifest)
	pids := r.workerPIDs(1)
	testkit.WaitFor(t, "the worker to ignore SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(filepath.Dir(manifest), "ignoring"))
		return err == nil
	})
	return r, pids[0]
}

func TestStopTimeoutExitsOne(t *testing.T) {
	t.Parallel()
	r, pid := startStubborn(t, "300ms")
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d, want 1 (a worker needed SIGKILL)", code)
	}
	waitDead(t, pid)
}

func TestSecondSignalKillsAtOnce(t *testing.T) {
	t.Parallel()
	r, pid := startStubborn(t, "1h")
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Wait for the graceful stop to begin, then insist.
	testkit.WaitFor(t, "the stopping event", func() bool { return r.logged("stopping") })
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	waitDead(t, pid)
}

func TestSIGKILLOfSupervisorLeavesNoWorker(t *testing.T) {
	t.Parallel()
	r := startPaddock(t, writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 3
`))
	pids := r.workerPIDs(3)
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r.wait()
	for _, pid := range pids {
		waitDead(t, pid)
	}
}

func TestInheritedDescriptorDoesNotReachWorkers(t *testing.T) {
	t.Parallel()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// paddock gets f as its descriptor 3, without close-on-exec.
	r := startPaddock(t, writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 2
    silent: true
`), f)
	if fds, err := testkit.OpenFDs(r.cmd.Process.Pid); err != nil || !slices.Contains(fds, 3) {
		t.Fatalf("paddock did not inherit descriptor 3: %v %v", fds, err)
	}
	for _, pid := range r.workerPIDs(2) {
		// The dynamic loader holds a descriptor for a moment while sleep
		// starts; a leaked one stays.
		testkit.WaitFDs(t, pid, []int{0, 1, 2})
	}
}
