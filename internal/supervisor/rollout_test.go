package supervisor

import (
	"strings"
	"testing"
)

// TestRollingRestartOfCrashLoopStalls: a rolling restart of an app whose
// workers all crash right after they start, so that no old worker is left,
// is reported stalled (with minReadyTime, a worker that was ready for a
// moment is not available), never complete. minReadyTime is an hour, so
// that a worker crashes within it however slowly the machine starts it.
func TestRollingRestartOfCrashLoopStalls(t *testing.T) {
	h := start(t, `
apps:
  crash:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:3"}
    instances: 2
    minReadyTime: 1h
    backoff: {initial: 10ms, max: 1s}
`)
	h.waitEvent("a first crash", func(e Event) bool { return e.Type == EventRestart && e.App == "crash" })
	info, err := h.sup.Restart(t.Context(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	e := h.waitEvent("the rollout stalled or complete", func(e Event) bool {
		return e.Generation == info.Generation && (e.Type == EventRolloutStalled || (e.Type == EventRolloutProgress && e.Detail == "complete"))
	})
	if e.Type != EventRolloutStalled || !strings.Contains(e.Detail, "exited within minReadyTime") {
		t.Fatalf("got %s %q, want rollout-stalled: ... exited within minReadyTime", e.Type, e.Detail)
	}
}
