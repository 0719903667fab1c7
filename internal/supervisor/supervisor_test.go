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
	"github.com/paddock-sh/paddock/reconcile"
)

func TestSpawnsInstances(t *testing.T) {
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
			// Nothing more happens, and no waiting is needed to know it:
			// the exit put the worker in Done, which no plan restarts, in
			// the same step that would have emitted a restart event; every
			// event emitted before Workers answered is in h.events.
			for _, e := range h.drain() {
				if e.Type == EventRestart || (e.Type == EventFork && e.Worker != first.Worker) {
					t.Fatalf("unexpected %s after a %s exit under restart: %s", e.Type, strconv.Itoa(tt.code), tt.restart)
				}
			}
		})
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	// How long a crashing worker lives depends on the machine, and the
	// restart count resets once a worker has stayed up for backoff.max.
	// So each app here is sure of its outcome whatever the speed:
	//   - crash exits at once, but its max (1h) is far beyond any start
	//     time: each restart doubles the delay;
	//   - vanished cannot even start (its program disappeared after the
	//     manifest was checked): a start failure has lived 0s, so its
	//     delay doubles up to max (40ms) and stays there;
	//   - slow exits after 150ms, longer than its max (80ms) in any case:
	//     its count resets every time, so every restart is the first.
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	set := load(t, dir, `
apps:
  crash:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1", STAMPS: $DIR/stamps}
    backoff: {initial: 10ms, max: 1h}
  vanished:
    exec: ./prog
    backoff: {initial: 10ms, max: 40ms}
  slow:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1:after=150ms"}
    backoff: {initial: 10ms, max: 80ms}
`)
	if err := os.Remove(prog); err != nil {
		t.Fatal(err)
	}
	h := startSet(t, set)
	delays := map[string][]time.Duration{}
	attempts := map[string][]int{}
	want := map[string]int{"crash": 6, "vanished": 5, "slow": 3}
	for len(delays["crash"]) < want["crash"] || len(delays["vanished"]) < want["vanished"] || len(delays["slow"]) < want["slow"] {
		e := h.waitEvent("restarts", isType(EventRestart))
		if len(delays[e.App]) < want[e.App] {
			delays[e.App] = append(delays[e.App], e.Delay)
			attempts[e.App] = append(attempts[e.App], e.Attempt)
		}
	}
	ms := func(ds ...time.Duration) []time.Duration {
		for i := range ds {
			ds[i] *= time.Millisecond
		}
		return ds
	}
	for app, w := range map[string]struct {
		delays   []time.Duration
		attempts []int
	}{
		"crash":    {ms(10, 20, 40, 80, 160, 320), []int{1, 2, 3, 4, 5, 6}},
		"vanished": {ms(10, 20, 40, 40, 40), []int{1, 2, 3, 4, 5}},
		"slow":     {ms(10, 10, 10), []int{1, 1, 1}},
	} {
		if !slices.Equal(delays[app], w.delays) || !slices.Equal(attempts[app], w.attempts) {
			t.Errorf("%s: delays %v attempts %v, want %v and %v", app, delays[app], attempts[app], w.delays, w.attempts)
		}
	}
	// The delays are honoured: each crash worker started at least the
	// delay after the previous one exited, as the workers themselves saw
	// the clock (no upper bound: the machine may be slow). The events'
	// times cannot show it: they are taken when the supervisor gets to
	// emit them, which may be after a short-lived worker already exited.
	b, err := os.ReadFile(filepath.Join(dir, "stamps"))
	if err != nil {
		t.Fatal(err)
	}
	var starts, exits []time.Time
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		what, ns, _ := strings.Cut(line, " ")
		n, err := strconv.ParseInt(ns, 10, 64)
		if err != nil && i == len(lines)-1 {
			break // the end of the file, or a worker still writing
		}
		if err != nil {
			t.Fatalf("stamps: %q", line)
		}
		if what == "start" {
			starts = append(starts, time.Unix(0, n))
		} else {
			exits = append(exits, time.Unix(0, n))
		}
	}
	for i := 1; i < len(starts) && i <= len(exits) && i <= len(delays["crash"]); i++ {
		if gap := starts[i].Sub(exits[i-1]); gap < delays["crash"][i-1] {
			t.Errorf("crash worker %d started %s after the previous one exited, before its delay %s", i+1, gap, delays["crash"][i-1])
		}
	}
	if len(starts) < len(delays["crash"]) {
		t.Errorf("%d crash workers stamped their start, want at least %d", len(starts), len(delays["crash"]))
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
	deadline := time.Now().Add(patience)
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
    killTimeout: 60s
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
    args: [3600]
  quiet:
    exec: /bin/sleep
    args: [3600]
    silent: true
`)
	ws := h.waitWorkers("2 workers", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].PID != 0 && ws[1].PID != 0 })
	for _, w := range ws {
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

func TestScaleUpAndDown(t *testing.T) {
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: %d
    killTimeout: 60s
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
