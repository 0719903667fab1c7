package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// stallManifest is a notify app of 2 workers whose VERSION the test
// changes; readyTimeout is long, so that only exits stall its rollouts.
const stallManifest = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 1s
    killTimeout: 60s
    backoff: {initial: 100ms, max: 1s}
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%d"}
`

// stalledReason returns why app's rollout is stalled, "" if it is not (or
// has no rollout).
func (h *fakeHarness) stalledReason(app string) string {
	h.t.Helper()
	ro, err := h.sup.Rollouts(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return ro[app].Stalled
}

// TestStallStaysUntilProgress: a new worker that crashes before it is
// ready stalls the rollout, and the rollout stays stalled while its
// replacement starts (running, not ready, within its readyTimeout) and
// crashes again: one rollout-stalled event for the whole crash loop, not
// one per crash. A new worker that becomes available is progress: the
// stall ends and the rollout goes on.
func TestStallStaysUntilProgress(t *testing.T) {
	t.Parallel()
	h := startFake(t, fmt.Sprintf(stallManifest, 1), nil)
	h.forks(2)
	old := h.workers()
	h.readyAll(old)
	last := max(old[0].ID, old[1].ID)
	h.apply(fmt.Sprintf(stallManifest, 2))
	for round := range 3 {
		fork := h.waitEvent("a new worker", func(e Event) bool { return e.Type == EventFork && e.Worker > last })
		last = fork.Worker
		if round > 0 {
			// Its replacement runs, within its readyTimeout: the
			// rollout is still stalled.
			if why := h.stalledReason("web"); !strings.Contains(why, "exited before it was ready") {
				t.Fatalf("round %d: while the replacement starts the rollout is stalled %q, want the recorded stall", round, why)
			}
		}
		h.procs.worker(t, fork.Worker).exit(1)
		r := h.waitEvent("its restart", func(e Event) bool { return e.Type == EventRestart && e.Worker == fork.Worker })
		if round == 0 {
			h.waitEvent("the stall", isType(EventRolloutStalled))
		}
		h.advance(r.Delay)
	}
	stalls := 0
	for _, e := range h.drain() {
		if e.Type == EventRolloutStalled {
			stalls++
		}
	}
	if stalls != 1 {
		t.Errorf("%d rollout-stalled events for one crash loop, want 1:%s", stalls, describe(h.seen))
	}
	// The next one becomes available: progress, the stall ends.
	fork := h.waitEvent("a new worker", func(e Event) bool { return e.Type == EventFork && e.Worker > last })
	h.ready(fork.Worker)
	h.advance(time.Second)
	h.waitEvent("an old worker retired", isType(EventStopping))
	if why := h.stalledReason("web"); why != "" {
		t.Errorf("after progress the rollout is still stalled: %q", why)
	}
	h.driveRollout(nil)
}

// stalledApp is a notify app whose release is the helper mode given.
const stalledApp = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: %s
    killTimeout: 60s
    backoff: {initial: 1h, max: 1h}
    env: {PADDOCK_TEST_HELPER: "%s", READY_DIR: $DIR}
`

// TestStallReportsTheFailingWorker: a rollout stalled by a new worker that
// exited says, in its rollout-stalled event and in the status, how it
// exited and what it wrote last; one stalled by a new worker that is not
// ready in time shows that worker's last lines while it runs.
func TestStallReportsTheFailingWorker(t *testing.T) {
	t.Parallel()
	h := start(t, fmt.Sprintf(stalledApp, "60s", "notify-serve:0s"))
	h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	h.apply(fmt.Sprintf(stalledApp, "60s", "last-words:3:7"))
	ev := h.waitEvent("rollout-stalled", isType(EventRolloutStalled))
	if ev.Stall == nil || ev.Stall.Exit == nil || ev.Stall.Exit.Code != 7 {
		t.Fatalf("rollout-stalled carries %+v, want the failing worker's exit with code 7", ev.Stall)
	}
	words := fmt.Sprintf("last words %d", ev.Stall.Exit.Worker)
	if !slices.Contains(ev.Stall.Exit.Lines, words) || !strings.Contains(ev.Detail, "exited with code 7") {
		t.Errorf("rollout-stalled: %q with lines %q, want the exit code and %q", ev.Detail, ev.Stall.Exit.Lines, words)
	}
	st := h.appStatus("web")
	if st.Rollout == nil || st.Rollout.Stalled == "" || st.Stall == nil || st.Stall.Exit == nil ||
		st.Stall.Exit.Code != 7 || !slices.Contains(st.Stall.Exit.Lines, words) {
		t.Errorf("status of the stalled rollout: %+v %+v", st.Rollout, st.Stall)
	}

	// A release that prints and is never ready.
	h.apply(fmt.Sprintf(stalledApp, "1s", "print"))
	fork := h.waitEvent("a fork of the release", func(e Event) bool { return e.Type == EventFork && e.Worker > ev.Stall.Exit.Worker })
	h.waitEvent("rollout-stalled", func(e Event) bool { return e.Type == EventRolloutStalled && e.Generation == fork.Generation })
	hello := fmt.Sprintf("hello from %d", fork.Worker)
	h.waitWorkers("the status to show the running worker's lines", func([]WorkerInfo) bool {
		st := h.appStatus("web")
		return st.Stall != nil && st.Stall.Exit == nil && slices.Contains(st.Stall.Lines, hello)
	})
}

// appStatus returns app's status.
func (h *harness) appStatus(app string) AppStatus {
	h.t.Helper()
	st, err := h.sup.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range st.Apps {
		if a.Name == app {
			return a
		}
	}
	h.t.Fatalf("no app %s", app)
	return AppStatus{}
}
