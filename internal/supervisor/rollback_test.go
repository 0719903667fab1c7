package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// rollbackManifest is an app of 2 notify workers that rolls back stalled
// rolling updates; the test picks the helper mode and VERSION.
const rollbackManifest = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 1s
    killTimeout: 60s
    backoff: {initial: 100ms, max: 1s}
    rollout: {onStall: rollback}
    env: {PADDOCK_TEST_HELPER: "%s", VERSION: "%d"}
`

// TestRollbackOnStall: with rollout.onStall: rollback, a release whose new
// worker crashes is rolled back to the generation that ran: the old
// workers, of that generation, stay (same pids, nothing forked for them),
// the status says the app is rolled back from the manifest's generation,
// and a reload of the same manifest keeps it so. paddock restart retries
// the manifest's release (rolled back again); an edit of the app rolls
// forward.
func TestRollbackOnStall(t *testing.T) {
	t.Parallel()
	h := startFake(t, fmt.Sprintf(rollbackManifest, "serve", 1), nil)
	h.forks(2)
	old := h.workers()
	h.readyAll(old)
	h.advance(time.Second) // available: generation 1 proved itself
	good := old[0].Generation

	h.apply(fmt.Sprintf(rollbackManifest, "exit:1", 2))
	stalled := h.waitEvent("rollout-stalled", isType(EventRolloutStalled))
	bad := stalled.Generation
	if !strings.Contains(stalled.Detail, "rolling back to generation "+good) {
		t.Errorf("rollout-stalled says %q, want that it rolls back to %s", stalled.Detail, good)
	}
	rb := h.waitEvent("rollout-rollback", isType(EventRolloutRollback))
	if rb.Generation != good || rb.FromGeneration != bad || !strings.Contains(rb.Detail, "exited before it was ready") {
		t.Errorf("rollout-rollback %+v, want from %s to %s with the stall's reason", rb, bad, good)
	}
	h.waitEvent("the rollback complete", func(e Event) bool { return isComplete(e) && e.Generation == good })
	h.checkRolledBack(old, bad, good)

	// A reload that leaves the app alone keeps the rollback.
	h.apply(fmt.Sprintf(rollbackManifest, "exit:1", 2))
	h.checkRolledBack(old, bad, good)
	set := load(t, h.dir, fmt.Sprintf(rollbackManifest, "exit:1", 2))
	if rbs, err := h.sup.Rollbacks(context.Background(), set); err != nil || rbs["web"].From != bad || rbs["web"].To != good {
		t.Errorf("Rollbacks of the same manifest: %+v %v, want web from %s to %s", rbs, err, bad, good)
	}
	if rbs, err := h.sup.Rollbacks(context.Background(), load(t, h.dir, fmt.Sprintf(rollbackManifest, "serve", 3))); err != nil || len(rbs) != 0 {
		t.Errorf("Rollbacks of a manifest that changes the app: %+v %v, want none", rbs, err)
	}

	// paddock restart retries the manifest's release: it stalls and is
	// rolled back again, to the same generation.
	info, err := h.sup.Restart(context.Background(), "web")
	if err != nil || info.Generation != bad+"-r1" {
		t.Fatalf("restart of a rolled-back app: %+v %v, want generation %s-r1", info, err, bad)
	}
	if e := h.waitEvent("restart-requested", isType(EventRestartRequested)); !strings.Contains(e.Detail, "the manifest's release is tried again") {
		t.Errorf("restart-requested of a rolled-back app says %q", e.Detail)
	}
	rb = h.waitEvent("rollout-rollback", isType(EventRolloutRollback))
	if rb.Generation != good || rb.FromGeneration != bad+"-r1" {
		t.Errorf("rollout-rollback %+v, want from %s-r1 to %s", rb, bad, good)
	}
	h.waitEvent("the rollback complete", func(e Event) bool { return isComplete(e) && e.Generation == good })
	h.checkRolledBack(old, bad+"-r1", good)

	// An edit of the app rolls forward.
	h.apply(fmt.Sprintf(rollbackManifest, "serve", 3))
	if st := h.appStatus("web"); st.RolledBack != nil || st.Generation == good {
		t.Errorf("after an edit: rolled back %+v, generation %s", st.RolledBack, st.Generation)
	}
	h.driveRollout(nil)
	for _, w := range live(h.workers(), "web") {
		if v := h.version(w.ID); v != "3" {
			t.Errorf("worker %d runs VERSION %s after the edit, want 3", w.ID, v)
		}
	}
}

// checkRolledBack checks that the app runs generation to, rolled back
// from from, with the workers old, untouched.
func (h *fakeHarness) checkRolledBack(old []WorkerInfo, from, to string) {
	h.t.Helper()
	st := h.appStatus("web")
	if st.RolledBack == nil || st.RolledBack.From != from || st.RolledBack.To != to || st.Generation != to ||
		!strings.Contains(st.RolledBack.Reason, "exited before it was ready") {
		h.t.Errorf("status: generation %s, rolled back %+v; want rolled back from %s to %s", st.Generation, st.RolledBack, from, to)
	}
	ws := live(h.workers(), "web")
	if len(ws) != len(old) {
		h.t.Fatalf("workers after the rollback:%s, want the old ones:%s", summary(ws), summary(old))
	}
	for i, w := range ws {
		if w.ID != old[i].ID || w.PID != old[i].PID || !w.Ready {
			h.t.Errorf("worker %d (pid %d) after the rollback, want the old %d (pid %d), ready", w.ID, w.PID, old[i].ID, old[i].PID)
		}
	}
	for _, e := range h.drain() {
		if (e.Type == EventStopping || e.Type == EventExit) && slices.ContainsFunc(old, func(o WorkerInfo) bool { return o.ID == e.Worker }) {
			h.t.Errorf("an old worker was stopped: %s", describe([]Event{e}))
		}
		if e.Type == EventFork && e.Generation == to && e.Worker > old[len(old)-1].ID {
			h.t.Errorf("a worker of the generation rolled back to was forked: %s", describe([]Event{e}))
		}
	}
}

// TestRollbackWithNothingToRollBackTo: an app whose workers never were all
// available (it crash-loops from the start) has nothing to roll back to: a
// stalled release is kept, and rollout-stalled says so.
func TestRollbackWithNothingToRollBackTo(t *testing.T) {
	t.Parallel()
	h := startFake(t, fmt.Sprintf(rollbackManifest, "exit:1", 1), nil)
	h.waitEvent("a restart", isType(EventRestart))
	h.apply(fmt.Sprintf(rollbackManifest, "exit:2", 2))
	for {
		e := h.waitEvent("the stall, or a restart", func(e Event) bool { return e.Type == EventRolloutStalled || e.Type == EventRestart })
		if e.Type == EventRolloutStalled {
			if !strings.Contains(e.Detail, "nothing to roll back to") {
				t.Errorf("rollout-stalled says %q, want nothing to roll back to", e.Detail)
			}
			break
		}
		h.advance(e.Delay)
	}
	for _, e := range h.drain() {
		if e.Type == EventRolloutRollback {
			t.Errorf("rolled back with nothing to roll back to: %s", describe([]Event{e}))
		}
	}
	if st := h.appStatus("web"); st.RolledBack != nil {
		t.Errorf("status says rolled back: %+v", st.RolledBack)
	}
}

// TestRollbackKeepsScaleAndInstances: a rolled-back app runs the
// manifest's instances (or the runtime override), not those of the
// generation it returned to.
func TestRollbackKeepsScaleAndInstances(t *testing.T) {
	t.Parallel()
	h := startFake(t, fmt.Sprintf(rollbackManifest, "serve", 1), nil)
	h.forks(2)
	h.readyAll(h.workers())
	h.advance(time.Second)
	three := strings.Replace(fmt.Sprintf(rollbackManifest, "exit:1", 2), "instances: 2", "instances: 3", 1)
	h.apply(three)
	rb := h.waitEvent("rollout-rollback", isType(EventRolloutRollback))
	fork := h.waitEvent("a third worker of the generation rolled back to", func(e Event) bool {
		return e.Type == EventFork && e.Generation == rb.Generation
	})
	if v := h.version(fork.Worker); v != "1" {
		t.Errorf("the third worker runs VERSION %s, want 1, the generation rolled back to", v)
	}
	h.driveRollout(nil)
	if ws := live(h.workers(), "web"); len(ws) != 3 {
		t.Errorf("workers after the rollback:%s, want 3", summary(ws))
	}
}
