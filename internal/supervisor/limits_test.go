package supervisor

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The real-process tests of the limits that mark a worker for replacement:
// a watchdog missed, memory above maxMemory. The rules themselves, to the
// nanosecond, are tested on the fake seam (watchdog_test.go,
// resources_test.go).

// liveIDs returns the ids of app's live workers that are not stopping.
func liveIDs(ws []WorkerInfo, app string) []int {
	var ids []int
	for _, w := range live(ws, app) {
		ids = append(ids, w.ID)
	}
	return ids
}

// noEventFor fails the test if an event of type typ for worker id was
// received so far.
func (h *harness) noEventFor(typ string, id int) {
	h.t.Helper()
	for _, e := range h.drain() {
		if e.Type == typ && e.Worker == id {
			h.t.Errorf("unexpected %s", describe([]Event{e}))
		}
	}
}

// TestWatchdogReplacesRealWorker: notify workers with a watchdog get
// WATCHDOG_USEC and their own pid in WATCHDOG_PID; the one that pings a few
// times and then stops is replaced new first and stopped gracefully, and
// its sibling, pinging all along, is left alone.
func TestWatchdogReplacesRealWorker(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 60s
    minReadyTime: 0s
    killTimeout: 60s
    watchdog: 5s
    env: {PADDOCK_TEST_HELPER: watchdog-ping, PING_LIMIT_WORKER: "1", PING_LIMIT: "3"}
`)
	for range 2 {
		r := h.waitEvent("a worker ready", isType(EventReady))
		env := environ(t, r.PID)
		if env["WATCHDOG_USEC"] != "5000000" || env["WATCHDOG_PID"] != strconv.Itoa(r.PID) {
			t.Errorf("worker %d (pid %d): WATCHDOG_USEC=%q WATCHDOG_PID=%q, want 5000000 and its pid",
				r.Worker, r.PID, env["WATCHDOG_USEC"], env["WATCHDOG_PID"])
		}
	}
	missed := h.waitEvent("watchdog-missed", isType(EventWatchdogMissed))
	if missed.Worker != 1 || !strings.Contains(missed.Detail, "no WATCHDOG=1 within its watchdog period (5s)") {
		t.Fatalf("watchdog-missed: %s, want worker 1's", describe([]Event{missed}))
	}
	next := h.waitEvent("the replacement's fork", func(e Event) bool { return e.Type == EventFork && e.Worker > 2 })
	h.waitEvent("the replacement ready", func(e Event) bool { return e.Type == EventReady && e.Worker == next.Worker })
	rep := h.waitEvent("replaced", isType(EventReplaced))
	if rep.Worker != 1 {
		t.Errorf("replaced %s, want worker 1", describe([]Event{rep}))
	}
	exit := h.waitEvent("worker 1's exit", func(e Event) bool { return e.Type == EventExit && e.Worker == 1 })
	if !exit.Intended || exit.ExitCode != 0 {
		t.Errorf("worker 1 exit: %s, want a graceful stop", describe([]Event{exit}))
	}
	if ids := liveIDs(h.waitWorkers("two workers", running("web", 2)), "web"); !slices.Equal(ids, []int{2, next.Worker}) {
		t.Errorf("serving: %v, want 2 and %d", ids, next.Worker)
	}
	h.noEventFor(EventWatchdogMissed, 2)
}

// TestMemoryLimitReplacesRealWorker: a worker that grows past maxMemory
// is replaced new first and stopped gracefully, and its sibling is not;
// Status shows the workers' resident memory and their app's sum.
func TestMemoryLimitReplacesRealWorker(t *testing.T) {
	t.Parallel()
	h := startWith(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    minReadyTime: 0s
    killTimeout: 60s
    maxMemory: 200Mi
    env: {PADDOCK_TEST_HELPER: grow, GROW_WORKER: "1", GROW_MIB: "300"}
`, func(_ *harness, o *Options) { o.SampleInterval = 50 * time.Millisecond })
	exceeded := h.waitEvent("memory-exceeded", isType(EventMemoryExceeded))
	if exceeded.Worker != 1 || !strings.Contains(exceeded.Detail, "above maxMemory 200Mi in two readings in a row") {
		t.Fatalf("memory-exceeded: %s, want worker 1's", describe([]Event{exceeded}))
	}
	next := h.waitEvent("the replacement's fork", func(e Event) bool { return e.Type == EventFork && e.Worker > 2 })
	rep := h.waitEvent("replaced", isType(EventReplaced))
	if rep.Worker != 1 || !strings.HasPrefix(rep.Detail, "memory: resident memory ") {
		t.Errorf("replaced: %s, want worker 1, for its memory", describe([]Event{rep}))
	}
	// It may still be growing when its killSignal comes, before its
	// handler is in place: it dies of SIGTERM then, still no SIGKILL.
	exit := h.waitEvent("worker 1's exit", func(e Event) bool { return e.Type == EventExit && e.Worker == 1 })
	if !exit.Intended || exit.Signal == "SIGKILL" {
		t.Errorf("worker 1 exit: %s, want a graceful stop", describe([]Event{exit}))
	}
	ws := h.waitWorkers("two workers", running("web", 2))
	if ids := liveIDs(ws, "web"); !slices.Equal(ids, []int{2, next.Worker}) {
		t.Errorf("serving: %v, want 2 and %d", ids, next.Worker)
	}
	h.noEventFor(EventMemoryExceeded, 2)

	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, w := range st.Workers {
		if w.Usage == nil || w.Usage.RSS <= 0 || w.Usage.RSS >= 200<<20 || w.Usage.Procs != 1 {
			t.Errorf("worker %d usage %+v, want a resident memory below the limit, one process", w.ID, w.Usage)
			continue
		}
		sum += w.Usage.RSS
	}
	if a := st.Apps[0].Usage; a == nil || a.RSS != sum || a.Procs != 2 {
		t.Errorf("app usage %+v, want the sum of its workers' (%d bytes, 2 processes)", a, sum)
	}
}
