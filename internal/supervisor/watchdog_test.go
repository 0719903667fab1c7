package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
)

// notify makes worker id send fields to $NOTIFY_SOCKET, through the loop's
// notify path.
func (h *fakeHarness) notify(id int, fields map[string]string) {
	h.t.Helper()
	pid := h.procs.worker(h.t, id).pid
	m := notify.Message{PID: pid, PGID: pid, Fields: fields, Time: h.clock.Now()}
	if err := h.sup.do(context.Background(), func(o *owner) { o.handleNotify(m) }); err != nil {
		h.t.Fatal(err)
	}
}

// noEvent fails the test if an event of type typ for worker was received
// so far.
func (h *fakeHarness) noEvent(typ string, worker int, when string) {
	h.t.Helper()
	h.workers() // the loop handled all it was woken for
	for _, e := range h.drain() {
		if e.Type == typ && (worker == 0 || e.Worker == worker) {
			h.t.Fatalf("%s: unexpected %s", when, describe([]Event{e}))
		}
	}
}

var ping = map[string]string{"WATCHDOG": "1"}

// TestWatchdogMissedReplacesNewFirst: a notify worker with a watchdog gets
// WATCHDOG_USEC and WATCHDOG_PID; its watchdog runs from its readiness, and
// each WATCHDOG=1 starts the period again; the worker that lets it pass is
// marked (watchdog-missed) at that very nanosecond, and replaced new first,
// while its pinging sibling is left alone.
func TestWatchdogMissedReplacesNewFirst(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 0s
    watchdog: 10s
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	for _, f := range h.forks(2) {
		spec := h.procs.worker(t, f.Worker).spec
		if got := envOf(spec.Env, "WATCHDOG_USEC"); got != "10000000" {
			t.Errorf("worker %d: WATCHDOG_USEC=%q, want 10000000", f.Worker, got)
		}
		if !slices.Equal(spec.PIDEnv, []string{"WATCHDOG_PID"}) {
			t.Errorf("worker %d: PIDEnv %q, want WATCHDOG_PID set to its pid", f.Worker, spec.PIDEnv)
		}
	}
	// The watchdog runs from readiness on: not before.
	h.advance(30 * time.Minute)
	h.noEvent(EventWatchdogMissed, 0, "before the workers were ready")

	h.readyAll(h.workers())
	start := h.clock.Now()
	if at := h.wakeAt(); !at.Equal(start.Add(10 * time.Second)) {
		t.Errorf("the loop wakes at %s, want the watchdog's deadline %s", at, start.Add(10*time.Second))
	}
	h.advance(9 * time.Second)
	h.notify(1, ping)
	h.notify(2, ping)
	h.advance(9 * time.Second)
	h.notify(1, ping) // worker 2 does not
	h.advance(time.Second - time.Nanosecond)
	h.noEvent(EventWatchdogMissed, 0, "within the period")
	if ws := live(h.workers(), "web"); len(ws) != 2 {
		t.Fatalf("within the period: %s", summary(ws))
	}

	h.advance(time.Nanosecond)
	missed := h.waitEvent("watchdog-missed", isType(EventWatchdogMissed))
	if missed.Worker != 2 || !strings.Contains(missed.Detail, "no WATCHDOG=1 within its watchdog period (10s)") {
		t.Fatalf("watchdog-missed: %s, want worker 2's, saying why", describe([]Event{missed}))
	}
	// New first: a replacement starts, worker 2 keeps serving until it is
	// available.
	next := h.waitEvent("the replacement's fork", isType(EventFork))
	if ws := live(h.workers(), "web"); len(ws) != 3 {
		t.Fatalf("with the replacement starting: %s, want 3 serving", summary(ws))
	}
	h.noEvent(EventStopping, 0, "before the replacement is ready")
	h.ready(next.Worker)
	h.expectReplaced(2, "watchdog: no WATCHDOG=1", 1, next.Worker)
	h.noEvent(EventWatchdogMissed, 1, "worker 1 pinged")
}

// TestWatchdogNotifications: as under systemd, WATCHDOG_USEC= sets a
// worker's period (even without watchdog: in the manifest) and starts it
// again, 0 or "infinity" turns it off, invalid values are ignored, and
// WATCHDOG=trigger marks the worker at once.
func TestWatchdogNotifications(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 0s
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	h.forks(1)
	if got := envOf(h.procs.worker(t, 1).spec.Env, "WATCHDOG_USEC"); got != "" {
		t.Errorf("a worker without watchdog has WATCHDOG_USEC=%s", got)
	}
	h.ready(1)
	h.notify(1, ping) // no watchdog: nothing to reset
	if at := h.wakeAt(); !at.IsZero() {
		t.Errorf("without a watchdog, the loop wakes at %s", at)
	}

	t0 := h.clock.Now()
	h.notify(1, map[string]string{"WATCHDOG_USEC": "2000000"})
	h.notify(1, map[string]string{"WATCHDOG_USEC": "2s"}) // invalid: ignored
	h.notify(1, map[string]string{"WATCHDOG_USEC": "-1"}) // invalid: ignored
	h.notify(1, map[string]string{"WATCHDOG": "please"})  // invalid: ignored
	if at := h.wakeAt(); !at.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("after WATCHDOG_USEC=2000000 the loop wakes at %s, want %s", at, t0.Add(2*time.Second))
	}
	h.advance(time.Second)
	h.notify(1, ping)
	if at := h.wakeAt(); !at.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("after WATCHDOG=1 the loop wakes at %s, want %s", at, t0.Add(3*time.Second))
	}
	for _, off := range []string{"0", "18446744073709551615"} {
		h.notify(1, map[string]string{"WATCHDOG_USEC": off})
		if at := h.wakeAt(); !at.IsZero() {
			t.Errorf("after WATCHDOG_USEC=%s the loop wakes at %s, want never", off, at)
		}
		h.advance(time.Hour)
		h.noEvent(EventWatchdogMissed, 0, "with the watchdog off (WATCHDOG_USEC="+off+")")
	}

	// Both in one message: the ping, then the new period from now.
	h.notify(1, map[string]string{"WATCHDOG": "1", "WATCHDOG_USEC": "1000000"})
	h.advance(time.Second - time.Nanosecond)
	h.noEvent(EventWatchdogMissed, 0, "within the 1s period")
	h.advance(time.Nanosecond)
	missed := h.waitEvent("watchdog-missed", isType(EventWatchdogMissed))
	if missed.Worker != 1 || !strings.Contains(missed.Detail, "(1s)") {
		t.Errorf("watchdog-missed: %s", describe([]Event{missed}))
	}
	next := h.waitEvent("the replacement's fork", isType(EventFork))
	h.ready(next.Worker)
	h.waitEvent("replaced", func(e Event) bool { return e.Type == EventReplaced && e.Worker == 1 })
	h.waitRetired()

	// WATCHDOG=trigger: at once, no time passing.
	h.notify(next.Worker, map[string]string{"WATCHDOG": "trigger"})
	trig := h.waitEvent("watchdog-missed on trigger", isType(EventWatchdogMissed))
	if trig.Worker != next.Worker || !strings.Contains(trig.Detail, "WATCHDOG=trigger") {
		t.Errorf("on WATCHDOG=trigger: %s", describe([]Event{trig}))
	}
	h.waitEvent("the next replacement's fork", isType(EventFork))
}
