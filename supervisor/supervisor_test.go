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

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
)

func TestSpawnsInstances(t *testing.T) {
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 3
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

func TestEnvVariablesForSupervisorAreNotInherited(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("LISTEN_FDS", "2")
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve, PADDOCK_WORKER_ID: "999"}
`)
	ws := h.waitWorkers("1 worker", running("web", 1))
	env := environ(t, ws[0].PID)
	for _, k := range []string{"NOTIFY_SOCKET", "LISTEN_FDS"} {
		if v, ok := env[k]; ok {
			t.Errorf("worker inherited %s=%s", k, v)
		}
	}
	if env["PADDOCK_WORKER_ID"] != strconv.Itoa(ws[0].ID) {
		t.Errorf("PADDOCK_WORKER_ID=%q: the manifest must not override it", env["PADDOCK_WORKER_ID"])
	}
}

func TestKilledWorkerIsReplaced(t *testing.T) {
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
    backoff: {initial: 10ms, max: 1s}
`)
	ws := h.waitWorkers("2 workers", running("web", 2))
	victim := ws[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ex := h.waitEvent("exit of the victim", func(e Event) bool { return e.Type == EventExit && e.Worker == victim.ID })
	if ex.Intended || ex.Signal != "SIGKILL" {
		t.Errorf("exit event: intended=%v signal=%q, want unintended SIGKILL", ex.Intended, ex.Signal)
	}
	h.waitEvent("restart", func(e Event) bool { return e.Type == EventRestart && e.Worker == victim.ID })
	on := h.waitEvent("replacement online", func(e Event) bool { return e.Type == EventOnline && e.Worker > ws[1].ID })
	if on.Worker <= ws[1].ID {
		t.Errorf("replacement has id %d; ids are never reused", on.Worker)
	}
	after := h.waitWorkers("2 workers again", running("web", 2))
	if after[0].ID != ws[1].ID || !alive(after[1].PID) {
		t.Errorf("unexpected workers after replacement: %+v", after)
	}
	waitGone(t, victim.PID, "killed worker")
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		restart     string
		code        int
		wantRestart bool
	}{
		{"always", 0, true},
		{"always", 3, true},
		{"on-failure", 0, false},
		{"on-failure", 3, true},
		{"never", 0, false},
		{"never", 3, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/exit%d", tt.restart, tt.code), func(t *testing.T) {
			h := start(t, fmt.Sprintf(`
apps:
  job:
    exec: $SELF
    restart: %s
    env: {PADDOCK_TEST_HELPER: "exit:%d"}
    backoff: {initial: 10ms, max: 10ms}
`, tt.restart, tt.code))
			first := h.waitEvent("first exit", isType(EventExit))
			if first.ExitCode != tt.code || first.Intended {
				t.Fatalf("exit code %d intended %v, want %d false", first.ExitCode, first.Intended, tt.code)
			}
			if tt.wantRestart {
				h.waitEvent("restart", isType(EventRestart))
				next := h.waitEvent("second fork", func(e Event) bool { return e.Type == EventFork && e.Worker != first.Worker })
				if next.Worker == first.Worker {
					t.Fatal("restarted worker kept its id")
				}
				return
			}
			ws := h.waitWorkers("the worker done", func(ws []WorkerInfo) bool {
				return len(ws) == 1 && ws[0].Phase == reconcile.Done
			})
			if ws[0].ID != first.Worker {
				t.Fatalf("workers %+v", ws)
			}
			// Nothing more happens: a restart would come 10ms after the exit.
			time.Sleep(300 * time.Millisecond)
			for {
				select {
				case e := <-h.events:
					if e.Type == EventFork || e.Type == EventRestart {
						t.Fatalf("unexpected %s after a %s exit under restart: %s", e.Type, strconv.Itoa(tt.code), tt.restart)
					}
					continue
				default:
				}
				break
			}
		})
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	// crash exits at once: each restart doubles the delay up to max.
	// slow runs for longer than max before it exits: its count resets every
	// time, so every restart is the first.
	h := start(t, `
apps:
  crash:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1"}
    backoff: {initial: 10ms, max: 80ms}
  slow:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1:after=150ms"}
    backoff: {initial: 10ms, max: 80ms}
`)
	var crashDelays []time.Duration
	var crashAttempts []int
	var crashForks []time.Time
	slowRestarts := 0
	for len(crashDelays) < 6 || slowRestarts < 3 {
		e := h.waitEvent("restarts", func(e Event) bool {
			return e.Type == EventRestart || (e.Type == EventFork && e.App == "crash")
		})
		switch {
		case e.Type == EventFork:
			crashForks = append(crashForks, e.Time)
		case e.App == "crash" && len(crashDelays) < 6:
			crashDelays = append(crashDelays, e.Delay)
			crashAttempts = append(crashAttempts, e.Attempt)
		case e.App == "slow":
			slowRestarts++
			if e.Attempt != 1 || e.Delay != 10*time.Millisecond {
				t.Errorf("slow: restart attempt %d delay %s, want 1 and 10ms (count reset after max)", e.Attempt, e.Delay)
			}
		}
	}
	wantDelays := []time.Duration{10, 20, 40, 80, 80, 80}
	for i := range wantDelays {
		wantDelays[i] *= time.Millisecond
	}
	if !slices.Equal(crashDelays, wantDelays) || !slices.Equal(crashAttempts, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("crash: delays %v attempts %v, want %v and 1..6", crashDelays, crashAttempts, wantDelays)
	}
	// The delays are honoured: forks are at least the delay apart (no
	// upper bound: the machine may be slow).
	for i := 1; i < len(crashForks) && i <= len(crashDelays); i++ {
		if gap := crashForks[i].Sub(crashForks[i-1]); gap < crashDelays[i-1] {
			t.Errorf("fork %d came %s after the previous one, before its delay %s", i, gap, crashDelays[i-1])
		}
	}
}

func TestKillTimeoutKillsWorkerAndGrandchild(t *testing.T) {
	const manifestFmt = `
apps:
  stubborn:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: ignore-term, PIDFILE: $DIR/grandchild.pid}
    killTimeout: 300ms
`
	h := start(t, fmt.Sprintf(manifestFmt, 1))
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

func TestShutdownReportsForcedKills(t *testing.T) {
	h := start(t, `
apps:
  stubborn:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: ignore-term, PIDFILE: $DIR/grandchild.pid}
    killTimeout: 200ms
  polite:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
`)
	ws := h.waitWorkers("3 workers", func(ws []WorkerInfo) bool { return len(ws) == 3 && ws[0].PID != 0 && ws[1].PID != 0 && ws[2].PID != 0 })
	grandchild := readPID(t, filepath.Join(h.dir, "grandchild.pid"))
	if err := h.stop(); !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("Run returned %v, want ErrStopTimeout", err)
	}
	for _, w := range ws {
		if alive(w.PID) {
			t.Errorf("%s/%d pid %d still alive after shutdown", w.App, w.ID, w.PID)
		}
	}
	// Killed with its worker's group; dead, perhaps not yet reaped, since
	// Run has returned (in paddock the process exits next).
	deadline := time.Now().Add(10 * time.Second)
	for alive(grandchild) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(grandchild) {
		t.Errorf("grandchild %d survived the shutdown", grandchild)
	}
}

func TestGracefulShutdownIsClean(t *testing.T) {
	h := start(t, `
apps:
  polite:
    exec: $SELF
    instances: 3
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: $DIR}
`)
	h.waitReady(h.waitWorkers("3 workers", running("polite", 3)))
	if err := h.stop(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	exits := 0
	for {
		select {
		case e := <-h.events:
			if e.Type == EventExit {
				exits++
				if !e.Intended || e.ExitCode != 0 {
					t.Errorf("exit %+v, want intended code 0", e)
				}
			}
			continue
		default:
		}
		break
	}
	if exits != 3 {
		t.Errorf("%d exit events, want 3", exits)
	}
}

func TestOrphanedGrandchildIsReaped(t *testing.T) {
	h := start(t, `
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
    args: [60]
  quiet:
    exec: /bin/sleep
    args: [60]
    silent: true
`)
	ws := h.waitWorkers("2 workers", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].PID != 0 && ws[1].PID != 0 })
	for _, w := range ws {
		// The dynamic loader holds a descriptor for a moment while sleep
		// starts; a leaked one stays.
		waitFDs(t, w.PID, []int{0, 1, 2})
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

func TestScaleUpAndDown(t *testing.T) {
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: $DIR}
`
	h := start(t, fmt.Sprintf(manifestFmt, 2))
	before := h.waitWorkers("2 workers", running("web", 2))
	h.apply(fmt.Sprintf(manifestFmt, 5))
	up := h.waitWorkers("5 workers", running("web", 5))
	h.waitReady(up)
	// Scaling up keeps the workers that were there.
	if up[0].PID != before[0].PID || up[1].PID != before[1].PID {
		t.Errorf("scale-up replaced existing workers: before %+v after %+v", before, up)
	}
	h.apply(fmt.Sprintf(manifestFmt, 1))
	down := h.waitWorkers("1 worker", running("web", 1))
	// Scaling down retires the newest workers; the oldest stays.
	if down[0].PID != before[0].PID {
		t.Errorf("scale-down kept %+v, want the oldest worker %+v", down[0], before[0])
	}
	for _, w := range up[1:] {
		e := h.waitEvent(fmt.Sprintf("exit of web/%d", w.ID), func(e Event) bool { return e.Type == EventExit && e.Worker == w.ID })
		if !e.Intended || e.ExitCode != 0 {
			t.Errorf("web/%d: exit intended=%v code=%d, want an intended exit 0", w.ID, e.Intended, e.ExitCode)
		}
	}
	// Retired workers are not restarted.
	h.apply(fmt.Sprintf(manifestFmt, 0))
	h.waitWorkers("no workers", func(ws []WorkerInfo) bool { return len(ws) == 0 })
	for _, e := range h.drain() {
		if e.Type == EventRestart {
			t.Errorf("a retired worker was restarted: %s", describe([]Event{e}))
		}
	}
}

func TestSilentOutputIsPrefixedPerLine(t *testing.T) {
	h := start(t, `
apps:
  talk:
    exec: $SELF
    instances: 2
    silent: true
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
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
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
	if os.Geteuid() != 0 {
		t.Skip("running workers as another user needs root")
	}
	h := start(t, `
apps:
  unprivileged:
    exec: /bin/sleep
    args: [60]
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

// waitFDs waits until process pid has exactly the descriptors want, and
// fails the test if that does not happen within a generous deadline.
func waitFDs(t testing.TB, pid int, want []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fds, err := procs.OpenFDs(pid)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(fds, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d has descriptors %v, want %v", pid, fds, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOutputCopiersDoNotPileUp: each start of a silent worker copies its
// output with two copiers; a copier is forgotten once its worker's pipes
// close, so that a crash-looping silent worker does not grow paddock.
func TestOutputCopiersDoNotPileUp(t *testing.T) {
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := h.sup.do(t.Context(), func() { n = h.sup.copiers.len() }); err != nil {
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
