package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/reconcile"
)

// mark marks worker id for replacement, as a failed health check, memory
// above maxMemory or a missed watchdog does.
func (h *fakeHarness) mark(id int, reason string) {
	h.t.Helper()
	if err := h.sup.do(context.Background(), func(o *owner) { o.workers[id].Replace = reason }); err != nil {
		h.t.Fatal(err)
	}
}

// expectReplaced waits for the replaced event of worker id, whose reason
// must start with why, and for the workers stopped to exit; then the
// serving workers of web must be want, in ID order.
func (h *fakeHarness) expectReplaced(id int, why string, want ...int) {
	h.t.Helper()
	rep := h.waitEvent("replaced", isType(EventReplaced))
	if rep.Worker != id || !strings.HasPrefix(rep.Detail, why) {
		h.t.Errorf("replaced: %s, want worker %d, %q", describe([]Event{rep}), id, why)
	}
	h.waitRetired()
	var ids []int
	for _, w := range live(h.workers(), "web") {
		ids = append(ids, w.ID)
	}
	if !slices.Equal(ids, want) {
		h.t.Errorf("serving: %v, want %v", ids, want)
	}
}

// TestMarkedWorkerIsReplacedNewFirst: a worker marked for replacement keeps
// serving until a new worker is available (ready for minReadyTime), then
// it alone is stopped, with a replaced event saying why; its sibling is
// untouched, and a replacement that crashes leaves the marked worker
// serving.
func TestMarkedWorkerIsReplacedNewFirst(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 5s
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	h.forks(2)
	h.readyAll(h.workers())
	h.advance(5 * time.Second)
	h.mark(1, "health check failed 3 times in a row")

	// The first replacement crashes before it is available: the marked
	// worker keeps serving, and the replacement is restarted.
	first := h.waitEvent("fork of a replacement", isType(EventFork))
	h.ready(first.Worker)
	h.procs.worker(t, first.Worker).exit(1)
	h.waitEvent("the replacement's exit", isType(EventExit))
	if ws := h.workers(); len(live(ws, "web")) != 2 || !slices.ContainsFunc(live(ws, "web"), func(w WorkerInfo) bool { return w.ID == 1 }) {
		t.Fatalf("after the replacement crashed: %s, want workers 1 and 2 serving", summary(ws))
	}
	for _, e := range h.drain() {
		if e.Type == EventStopping || e.Type == EventReplaced {
			t.Fatalf("a worker was stopped while no replacement was available: %s", describe([]Event{e}))
		}
	}

	// The next one becomes available: only then is worker 1 stopped.
	h.advance(time.Minute) // past the restart delay
	second := h.waitEvent("fork of the next replacement", isType(EventFork))
	h.ready(second.Worker)
	h.advance(5*time.Second - time.Nanosecond)
	if ws := h.workers(); len(live(ws, "web")) != 3 {
		t.Fatalf("before the replacement is available: %s, want 3 serving", summary(ws))
	}
	h.advance(time.Nanosecond)
	rep := h.waitEvent("the replaced event", isType(EventReplaced))
	if rep.Worker != 1 || rep.Detail != "health check failed 3 times in a row" {
		t.Errorf("replaced event: %s, want worker 1 with the reason", describe([]Event{rep}))
	}
	stop := h.waitEvent("worker 1 stopping", isType(EventStopping))
	if stop.Worker != 1 {
		t.Errorf("stopped %s, want worker 1", describe([]Event{stop}))
	}
	h.waitRetired()
	ws := h.workers()
	var ids []int
	for _, w := range live(ws, "web") {
		ids = append(ids, w.ID)
	}
	if !slices.Equal(ids, []int{2, second.Worker}) {
		t.Errorf("serving after the replacement: %s, want workers 2 and %d", summary(ws), second.Worker)
	}
	for _, w := range ws {
		if w.Phase == reconcile.Stopping {
			t.Errorf("still stopping: %s", summary(ws))
		}
	}
}
