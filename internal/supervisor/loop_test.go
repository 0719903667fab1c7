package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/reconcile"
)

// The owner loop's logic, on the fake seam (fake_test.go): no process is
// forked, no test sleeps, and the clock moves only when a test says so, so
// that delays are checked to the nanosecond. The real-process tests keep
// what needs a process: signals to real groups, descriptors, sockets,
// notifications from real senders, output pipes, Node's cluster workers.

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
			t.Parallel()
			h := startFake(t, fmt.Sprintf(`
apps:
  job:
    exec: $SELF
    restart: %s
    env: {PADDOCK_TEST_HELPER: "exit:%d"}
    backoff: {initial: 10ms, max: 10ms}
`, tt.restart, tt.code), nil)
			first := h.waitEvent("first exit", isType(EventExit))
			if first.ExitCode != tt.code || first.Intended {
				t.Fatalf("exit code %d intended %v, want %d false", first.ExitCode, first.Intended, tt.code)
			}
			if tt.wantRestart {
				r := h.waitEvent("restart", isType(EventRestart))
				if r.Delay != 10*time.Millisecond {
					t.Errorf("restart delay %s, want 10ms", r.Delay)
				}
				h.advance(r.Delay)
				next := h.waitEvent("second fork", func(e Event) bool { return e.Type == EventFork && e.Worker != first.Worker })
				if next.Worker == first.Worker {
					t.Fatal("restarted worker kept its id")
				}
				return
			}
			// The exit put the worker in Done in the step that emitted the
			// exit event: Workers answers after it.
			ws := h.workers()
			if len(ws) != 1 || ws[0].Phase != reconcile.Done || ws[0].ID != first.Worker {
				t.Fatalf("workers %+v, want worker %d done", ws, first.Worker)
			}
			// No timer is left to fire: an hour later, nothing happened.
			h.advance(time.Hour)
			h.workers()
			for _, e := range h.drain() {
				if e.Type == EventRestart || (e.Type == EventFork && e.Worker != first.Worker) {
					t.Fatalf("unexpected %s after a %s exit under restart: %s", e.Type, strconv.Itoa(tt.code), tt.restart)
				}
			}
		})
	}
}

// TestBackoffGrowsAndResets: the restart delay doubles with each
// consecutive failure up to backoff.max, and a worker that stayed up for
// backoff.max starts the count again. Each replacement starts exactly at
// its delay: not a nanosecond before.
func TestBackoffGrowsAndResets(t *testing.T) {
	ms := func(ds ...time.Duration) []time.Duration {
		for i := range ds {
			ds[i] *= time.Millisecond
		}
		return ds
	}
	for _, tt := range []struct {
		name, helper, backoff string
		vanish                bool          // the program cannot be started
		uptime                time.Duration // how long each worker runs before it exits 1
		delays                []time.Duration
		attempts              []int
	}{
		// exits at once; its max is far beyond: each restart doubles.
		{name: "crash", helper: "exit:1", backoff: "{initial: 10ms, max: 1h}",
			delays: ms(10, 20, 40, 80, 160, 320), attempts: []int{1, 2, 3, 4, 5, 6}},
		// a start failure has lived 0s: doubles up to max and stays.
		{name: "vanished", helper: "serve", backoff: "{initial: 10ms, max: 40ms}", vanish: true,
			delays: ms(10, 20, 40, 40, 40), attempts: []int{1, 2, 3, 4, 5}},
		// up for 150ms, longer than its max (80ms): every restart is the first.
		{name: "slow", helper: "serve", backoff: "{initial: 10ms, max: 80ms}", uptime: 150 * time.Millisecond,
			delays: ms(10, 10, 10), attempts: []int{1, 1, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startFake(t, fmt.Sprintf(`
apps:
  app:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: %q}
    backoff: %s
`, tt.helper, tt.backoff), func(h *harness, o *Options) {
				if tt.vanish {
					o.processes.(*fakeProcesses).failStart[self(t)] = true
				}
			})
			var delays []time.Duration
			var attempts []int
			for len(delays) < len(tt.delays) {
				if tt.uptime > 0 {
					fork := h.waitEvent("fork", isType(EventFork))
					h.advance(tt.uptime)
					h.procs.worker(t, fork.Worker).exit(1)
				}
				e := h.waitEvent("restart", isType(EventRestart))
				delays, attempts = append(delays, e.Delay), append(attempts, e.Attempt)
				// The loop is to wake for it, not earlier, not later.
				if at, want := h.wakeAt(), h.clock.Now().Add(e.Delay); !at.Equal(want) {
					t.Fatalf("restart delay %s: the loop wakes at %s, want %s", e.Delay, at.Sub(fakeEpoch), want.Sub(fakeEpoch))
				}
				// Not a nanosecond early.
				h.advance(e.Delay - time.Nanosecond)
				ws := h.workers()
				if len(ws) != 1 || ws[0].Phase != reconcile.Backoff || !ws[0].RestartAt.Equal(h.clock.Now().Add(time.Nanosecond)) {
					t.Fatalf("%s before the restart delay %s: %s, want worker %d in backoff until then", e.Delay-time.Nanosecond, e.Delay, summary(ws), e.Worker)
				}
				h.advance(time.Nanosecond)
				if ws := h.workers(); len(ws) != 1 || ws[0].ID == e.Worker {
					t.Fatalf("at the restart delay %s: %s, want worker %d replaced", e.Delay, summary(ws), e.Worker)
				}
			}
			if !slices.Equal(delays, tt.delays) || !slices.Equal(attempts, tt.attempts) {
				t.Errorf("delays %v attempts %v, want %v and %v", delays, attempts, tt.delays, tt.attempts)
			}
		})
	}
}

func TestKilledWorkerIsReplaced(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
    backoff: {initial: 10ms, max: 1s}
`, nil)
	h.forks(2)
	ws := h.workers()
	victim := ws[0]
	h.procs.worker(t, victim.ID).kill(syscall.SIGKILL)
	ex := h.waitEvent("exit of the victim", func(e Event) bool { return e.Type == EventExit && e.Worker == victim.ID })
	if ex.Intended || ex.Signal != "SIGKILL" {
		t.Errorf("exit event: intended=%v signal=%q, want unintended SIGKILL", ex.Intended, ex.Signal)
	}
	r := h.waitEvent("restart", func(e Event) bool { return e.Type == EventRestart && e.Worker == victim.ID })
	h.advance(r.Delay)
	on := h.waitEvent("replacement online", func(e Event) bool { return e.Type == EventOnline && e.Worker > ws[1].ID })
	if on.Worker <= ws[1].ID {
		t.Errorf("replacement has id %d; ids are never reused", on.Worker)
	}
	after := h.workers()
	if len(live(after, "web")) != 2 || after[0].ID != ws[1].ID {
		t.Errorf("unexpected workers after replacement: %s", summary(after))
	}
	if _, _, released := h.procs.worker(t, victim.ID).record(); !released {
		t.Error("the killed worker's process was not released")
	}
}

func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: %d
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: serve}
`
	h := startFake(t, fmt.Sprintf(manifestFmt, 2), nil)
	h.forks(2)
	before := h.workers()
	h.apply(fmt.Sprintf(manifestFmt, 5))
	up := h.workers()
	// Scaling up keeps the workers that were there.
	if len(live(up, "web")) != 5 || up[0].PID != before[0].PID || up[1].PID != before[1].PID {
		t.Errorf("scale-up: before %s after %s", summary(before), summary(up))
	}
	h.apply(fmt.Sprintf(manifestFmt, 1))
	// Scaling down retires the newest workers; the oldest stays.
	for _, w := range up[1:] {
		e := h.waitEvent(fmt.Sprintf("exit of web/%d", w.ID), func(e Event) bool { return e.Type == EventExit && e.Worker == w.ID })
		if !e.Intended || e.ExitCode != 0 {
			t.Errorf("web/%d: exit intended=%v code=%d, want an intended exit 0", w.ID, e.Intended, e.ExitCode)
		}
		if sigs, _, _ := h.procs.worker(t, w.ID).record(); !slices.Equal(sigs, []syscall.Signal{syscall.SIGTERM}) {
			t.Errorf("web/%d was sent %v, want SIGTERM", w.ID, sigs)
		}
	}
	if down := h.workers(); len(down) != 1 || down[0].PID != before[0].PID {
		t.Errorf("scale-down kept %s, want the oldest worker %d", summary(down), before[0].ID)
	}
	// Retired workers are not restarted.
	h.apply(fmt.Sprintf(manifestFmt, 0))
	h.waitEvent("exit of the last", func(e Event) bool { return e.Type == EventExit && e.Worker == before[0].ID })
	if ws := h.workers(); len(ws) != 0 {
		t.Errorf("workers left: %s", summary(ws))
	}
	for _, e := range h.drain() {
		if e.Type == EventRestart {
			t.Errorf("a retired worker was restarted: %s", describe([]Event{e}))
		}
	}
}

// TestKillTimeoutSendsSIGKILL: a worker that ignores its killSignal gets
// SIGKILL to its group exactly killTimeout later, and its exit is intended.
// (TestKillTimeoutKillsWorkerAndGrandchild checks the same with a real
// process group.)
func TestKillTimeoutSendsSIGKILL(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  stubborn:
    exec: $SELF
    instances: %d
    killSignal: SIGINT
    env: {PADDOCK_TEST_HELPER: ignore-term}
    killTimeout: 300ms
`
	h := startFake(t, fmt.Sprintf(manifestFmt, 1), nil)
	w := h.forks(1)[0]
	h.apply(fmt.Sprintf(manifestFmt, 0))
	st := h.waitEvent("stopping", isType(EventStopping))
	if st.Signal != "SIGINT" || st.Delay != 300*time.Millisecond {
		t.Errorf("stopping: signal %s timeout %s, want SIGINT 300ms", st.Signal, st.Delay)
	}
	p := h.procs.worker(t, w.Worker)
	if at, want := h.wakeAt(), h.clock.Now().Add(300*time.Millisecond); !at.Equal(want) {
		t.Errorf("the loop wakes at %s, want at killTimeout, %s", at.Sub(fakeEpoch), want.Sub(fakeEpoch))
	}
	h.advance(300*time.Millisecond - time.Nanosecond)
	h.workers()
	if sigs, kills, _ := p.record(); kills != 0 || !slices.Equal(sigs, []syscall.Signal{syscall.SIGINT}) {
		t.Fatalf("before killTimeout: signals %v, group kills %d; want SIGINT alone", sigs, kills)
	}
	h.advance(time.Nanosecond)
	kill := h.waitEvent("kill", isType(EventKill))
	ex := h.waitEvent("exit", isType(EventExit))
	if kill.Worker != w.Worker || ex.Worker != w.Worker || !ex.Intended || ex.Signal != "SIGKILL" {
		t.Errorf("kill %+v exit %+v: want SIGKILL of worker %d, intended", kill, ex, w.Worker)
	}
	if _, kills, _ := p.record(); kills != 1 {
		t.Errorf("%d group kills, want 1", kills)
	}
	if ws := h.workers(); len(ws) != 0 {
		t.Errorf("workers left: %s", summary(ws))
	}
}

func TestShutdownReportsForcedKills(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  stubborn:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: ignore-term}
    killTimeout: 200ms
  polite:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	forks := h.forks(3)
	h.cancel()
	for range 3 {
		h.waitEvent("stopping", isType(EventStopping))
	}
	h.advance(200 * time.Millisecond)
	if err := h.stop(); !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("Run returned %v, want ErrStopTimeout", err)
	}
	for _, f := range forks {
		p := h.procs.worker(t, f.Worker)
		_, kills, _ := p.record()
		if want := map[bool]int{true: 1, false: 0}[f.App == "stubborn"]; kills != want {
			t.Errorf("%s/%d: %d group kills, want %d", f.App, f.Worker, kills, want)
		}
	}
}

func TestGracefulShutdownIsClean(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  polite:
    exec: $SELF
    instances: 3
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	h.forks(3)
	if err := h.stop(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	exits := 0
	for _, e := range h.drain() {
		if e.Type == EventExit {
			exits++
			if !e.Intended || e.ExitCode != 0 {
				t.Errorf("exit %+v, want intended code 0", e)
			}
		}
	}
	if exits != 3 {
		t.Errorf("%d exit events, want 3", exits)
	}
}
