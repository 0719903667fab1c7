package supervisor

import (
	"context"
	"fmt"
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
