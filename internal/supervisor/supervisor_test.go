package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
)

func TestSpawnsInstances(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 3
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: serve, GREETING: hi, NOTIFY_SOCKET: /nope}
`)
	ws := h.waitWorkers("3 workers", running("web", 3))
	ids := map[string]bool{}
	for _, w := range ws {
		if !alive(w.PID) {
			t.Fatalf("worker %d pid %d is not alive", w.ID, w.PID)
		}
		env := environ(t, w.PID)
		if env["PADDOCK_APP"] != "web" || env["GREETING"] != "hi" {
			t.Errorf("worker %d env: PADDOCK_APP=%q GREETING=%q", w.ID, env["PADDOCK_APP"], env["GREETING"])
		}
		if env["PADDOCK_WORKER_ID"] != strconv.Itoa(w.ID) {
			t.Errorf("worker %d has PADDOCK_WORKER_ID=%q", w.ID, env["PADDOCK_WORKER_ID"])
		}
		ids[env["PADDOCK_WORKER_ID"]] = true
		// Its own process group.
		if pgid, err := syscall.Getpgid(w.PID); err != nil || pgid != w.PID {
			t.Errorf("worker %d: pgid %d, want its own pid %d (%v)", w.ID, pgid, w.PID, err)
		}
	}
	if len(ids) != 3 {
		t.Errorf("worker ids not distinct: %v", ids)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, w := range ws {
		waitGone(t, w.PID, "stopped worker")
	}
}

// TestEnvVariablesForSupervisorAreNotInherited does not run in parallel:
// it sets the process's environment (t.Setenv).
func TestEnvVariablesForSupervisorAreNotInherited(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("LISTEN_FDS", "2")
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve, PADDOCK_WORKER_ID: "999", READY_DIR: $DIR}
`)
	ws := h.waitWorkers("1 worker", running("web", 1))
	// The environment of the program paddock executed, for certain, not
	// that of the forked supervisor before the exec: the helper creates
	// its ready file only once it runs (named by the PADDOCK_WORKER_ID it
	// sees, so whichever name it has).
	deadline := time.Now().Add(patience)
	for {
		if m, _ := filepath.Glob(filepath.Join(h.dir, "ready.*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	env := environ(t, ws[0].PID)
	for _, k := range []string{"NOTIFY_SOCKET", "LISTEN_FDS"} {
		if v, ok := env[k]; ok {
			t.Errorf("worker inherited %s=%s", k, v)
		}
	}
	if env["PADDOCK_WORKER_ID"] != strconv.Itoa(ws[0].ID) {
		t.Errorf("PADDOCK_WORKER_ID=%q: the manifest must not override it", env["PADDOCK_WORKER_ID"])
	}
	// And the worker itself (getenv takes the first of duplicates) sees
	// its own id.
	if _, err := os.Stat(filepath.Join(h.dir, "ready."+strconv.Itoa(ws[0].ID))); err != nil {
		t.Errorf("the worker does not see its own PADDOCK_WORKER_ID: %v", err)
	}
}

// TestKillTimeoutKillsWorkerAndGrandchild does not run in parallel: the
// grandchild, re-parented to this process, is reaped only by a Reaper that
// reaps every child.
func TestKillTimeoutKillsWorkerAndGrandchild(t *testing.T) {
	const manifestFmt = `
apps:
  stubborn:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: ignore-term, PIDFILE: $DIR/grandchild.pid}
    killTimeout: 300ms
`
	h := startReapingAll(t, fmt.Sprintf(manifestFmt, 1))
	ws := h.waitWorkers("1 worker", running("stubborn", 1))
	grandchild := readPID(t, filepath.Join(h.dir, "grandchild.pid"))
	if !alive(grandchild) {
		t.Fatal("grandchild not running")
	}
	h.apply(fmt.Sprintf(manifestFmt, 0))
	h.waitEvent("stopping", isType(EventStopping))
	kill := h.waitEvent("kill", isType(EventKill))
	ex := h.waitEvent("exit", isType(EventExit))
	if kill.Worker != ws[0].ID || ex.Worker != ws[0].ID || !ex.Intended || ex.Signal != "SIGKILL" {
		t.Errorf("kill %+v exit %+v: want SIGKILL of worker %d, intended", kill, ex, ws[0].ID)
	}
	if ex.Time.Sub(kill.Time) < 0 {
		t.Error("exit before kill")
	}
	// Both die, and both are reaped (the grandchild, re-parented to the
	// supervisor, too).
	waitGone(t, ws[0].PID, "worker that ignores SIGTERM")
	waitGone(t, grandchild, "grandchild that ignores SIGTERM")
	h.waitWorkers("no workers", func(ws []WorkerInfo) bool { return len(ws) == 0 })
}

// TestOrphanedGrandchildIsReaped does not run in parallel: its supervisor
// reaps every child of this process, as paddock does.
func TestOrphanedGrandchildIsReaped(t *testing.T) {
	h := startReapingAll(t, `
apps:
  parent:
    exec: $SELF
    restart: never
    env: {PADDOCK_TEST_HELPER: orphan, PIDFILE: $DIR/orphan.pid}
`)
	h.waitEvent("worker exit", isType(EventExit))
	orphan := readPID(t, filepath.Join(h.dir, "orphan.pid"))
	// The orphan left its parent's session, so it outlives the worker; it
	// is re-parented to the supervisor (subreaper), which must reap it
	// when it exits, leaving no zombie.
	waitGone(t, orphan, "orphaned grandchild")
}

// TestNoUnexpectedDescriptorsInWorkers does not run in parallel: the
// descriptor it leaks on purpose, inheritable until CloseOnExecInherited,
// would reach the workers that other tests start meanwhile.
func TestNoUnexpectedDescriptorsInWorkers(t *testing.T) {
	// A descriptor the supervisor holds without close-on-exec must not reach
	// a worker; neither must the supervisor's own (pipes, epoll).
	leak, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	if err := procs.CloseOnExecInherited(); err != nil {
		t.Fatal(err)
	}
	h := start(t, `
apps:
  plain:
    exec: /bin/sleep
    args: [3600]
  quiet:
    exec: /bin/sleep
    args: [3600]
    silent: true
  probed:
    exec: /bin/sleep
    args: [3600]
    schedulingPolicy: none
    listen: ["127.0.0.1:0"]
    healthCheck:
      http: {port: worker}
      startPeriod: 1h
`)
	ws := h.waitWorkers("3 workers", func(ws []WorkerInfo) bool {
		return len(ws) == 3 && ws[0].PID != 0 && ws[1].PID != 0 && ws[2].PID != 0
	})
	for _, w := range ws {
		if w.App == "probed" {
			// Its listen: socket (3, LISTEN_FDS=1), then its health
			// socket (4, not counted in LISTEN_FDS).
			testkit.WaitFDs(t, w.PID, []int{0, 1, 2, 3, 4})
			checkHealthSocket(t, w.PID, 4)
			continue
		}
		// The dynamic loader holds a descriptor for a moment while sleep
		// starts; a leaked one stays.
		testkit.WaitFDs(t, w.PID, []int{0, 1, 2})
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", w.PID)); target != "/dev/null" {
			t.Errorf("%s/%d stdin is %q, want /dev/null", w.App, w.ID, target)
		}
		if w.App == "quiet" {
			if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", w.PID)); !strings.HasPrefix(target, "pipe:") {
				t.Errorf("silent worker stdout is %q, want a pipe", target)
			}
		}
	}
}

func TestSilentOutputIsPrefixedPerLine(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  talk:
    exec: $SELF
    instances: 2
    silent: true
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: print, READY_DIR: $DIR}
`)
	ws := h.waitWorkers("2 workers", running("talk", 2))
	h.waitReady(ws)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	out := h.out.String()
	for _, w := range ws {
		for _, line := range []string{"hello from %d", "second line from %d", "complaint from %d"} {
			want := fmt.Sprintf("talk/%d | "+line+"\n", w.ID, w.ID)
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "talk/") {
			t.Errorf("line without prefix: %q", line)
		}
	}
}

func TestStartFailureIsRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := testkit.WriteFile(prog, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	set := load(t, dir, `
apps:
  gone:
    exec: ./prog
    backoff: {initial: 10ms, max: 40ms}
`)
	// The program disappears between validation and start.
	if err := os.Remove(prog); err != nil {
		t.Fatal(err)
	}
	h := startSet(t, set)
	var attempts []int
	for len(attempts) < 3 {
		e := h.waitEvent("restart", isType(EventRestart))
		attempts = append(attempts, e.Attempt)
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts %v, want [1 2 3]", attempts)
	}
	for _, e := range h.drain() {
		if e.Type == EventExit && !strings.Contains(e.Detail, "start failed") {
			t.Errorf("exit without the start error: %s", describe([]Event{e}))
		}
		if e.Type == EventExit && (e.StartErr == nil || e.StartErr.Program != prog || e.StartErr.Worker != e.Worker ||
			!errors.Is(e.StartErr, os.ErrNotExist)) {
			t.Errorf("exit event's start error %v, want one naming %s, worker %d, not found", e.StartErr, prog, e.Worker)
		}
	}
}

// startSet is start for an already loaded set.
func startSet(t *testing.T, set *manifest.Set) *harness {
	t.Helper()
	h := start(t, "")
	if _, err := h.sup.Apply(t.Context(), set); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRunsAsUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("running workers as another user needs root")
	}
	h := start(t, `
apps:
  unprivileged:
    exec: /bin/sleep
    args: [3600]
    cwd: /
    user: nobody
`)
	ws := h.waitWorkers("1 worker", running("unprivileged", 1))
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ws[0].PID))
	if err != nil {
		t.Fatal(err)
	}
	var uid, gid string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		} else if len(f) > 1 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	if uid != "65534" || gid != "65534" {
		t.Errorf("worker runs as uid %s gid %s, want nobody (65534/65534)", uid, gid)
	}
}

// TestOutputCopiersDoNotPileUp: each start of a silent worker copies its
// output with two copiers; a copier is forgotten once its worker's pipes
// close, so that a crash-looping silent worker does not grow paddock.
func TestOutputCopiersDoNotPileUp(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  loud:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1"}
    silent: true
    backoff: {initial: 10ms, max: 10ms}
`)
	for restarts := 0; restarts < 100; {
		if e := h.waitEvent("restarts", isType(EventRestart)); e.App == "loud" {
			restarts++
		}
	}
	h.apply("apps: {}")
	h.waitWorkers("no worker", func(ws []WorkerInfo) bool { return len(ws) == 0 })
	deadline := time.Now().Add(patience)
	for {
		var n int
		if err := h.sup.do(t.Context(), func(o *owner) { n = o.copiers.len() }); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d output copiers still held after 100 restarts and the app's removal", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
