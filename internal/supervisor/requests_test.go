package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
)

// The control API's requests (Scale, Signal, Restart), on the fake seam
// (fake_test.go).

// TestScaleOverride: Scale sets an app's worker count at run time until
// the manifest's own `instances` changes; a manifest applied with the same
// `instances` keeps the override.
func TestScaleOverride(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%d"}
`
	h := startFake(t, fmt.Sprintf(manifestFmt, 2, 1), nil)
	h.forks(2)
	info, err := h.sup.Scale(t.Context(), "web", 4)
	if err != nil || info != (ScaleInfo{From: 2, Instances: 4, ManifestInstances: 2, Override: true}) {
		t.Fatalf("Scale: %+v %v", info, err)
	}
	e := h.waitEvent("scale", isType(EventScale))
	if want := "2→4 (runtime override of instances: 2, until the manifest's instances change)"; e.Detail != want {
		t.Errorf("scale detail %q, want %q", e.Detail, want)
	}
	if ws := h.workers(); len(live(ws, "web")) != 4 {
		t.Fatalf("after Scale 4: %s", summary(ws))
	}
	// Same instances, another version: the override stays.
	h.apply(fmt.Sprintf(manifestFmt, 2, 2))
	h.driveRollout(nil)
	st, err := h.sup.Status(t.Context())
	if err != nil || len(st.Apps) != 1 || st.Apps[0].Instances != 4 || !st.Apps[0].Override || len(live(st.Workers, "web")) != 4 {
		t.Fatalf("after a change that keeps instances: %+v %v", st, err)
	}
	// The manifest's instances change: it speaks again.
	h.apply(fmt.Sprintf(manifestFmt, 3, 2))
	h.waitRetired()
	st, err = h.sup.Status(t.Context())
	if err != nil || st.Apps[0].Instances != 3 || st.Apps[0].Override || len(live(st.Workers, "web")) != 3 {
		t.Fatalf("after the manifest's instances changed: %+v %v", st, err)
	}
	if _, err := h.sup.Scale(t.Context(), "nope", 1); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("Scale of an unknown app: %v, want ErrUnknownApp", err)
	}
	if _, err := h.sup.Scale(t.Context(), "web", -1); err == nil {
		t.Error("Scale to -1 succeeded")
	}
}

// TestSignalReachesLiveWorkers: Signal sends a signal to the live workers
// of an app, or to one of them, and says which.
func TestSignalReachesLiveWorkers(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    instances: 3
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	h.forks(3)
	ids, err := h.sup.Signal(t.Context(), "web", 0, syscall.SIGUSR1)
	if err != nil || !slices.Equal(ids, []int{1, 2, 3}) {
		t.Fatalf("Signal to all: %v %v, want [1 2 3]", ids, err)
	}
	if ids, err := h.sup.Signal(t.Context(), "web", 2, syscall.SIGHUP); err != nil || !slices.Equal(ids, []int{2}) {
		t.Fatalf("Signal to worker 2: %v %v", ids, err)
	}
	for id, want := range map[int][]syscall.Signal{1: {syscall.SIGUSR1}, 2: {syscall.SIGUSR1, syscall.SIGHUP}, 3: {syscall.SIGUSR1}} {
		if sigs, _, _ := h.procs.worker(t, id).record(); !slices.Equal(sigs, want) {
			t.Errorf("worker %d got %v, want %v", id, sigs, want)
		}
	}
	if _, err := h.sup.Signal(t.Context(), "web", 9, syscall.SIGHUP); err == nil {
		t.Error("Signal to a worker that does not exist succeeded")
	}
	if _, err := h.sup.Signal(t.Context(), "nope", 0, syscall.SIGHUP); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("Signal to an unknown app: %v, want ErrUnknownApp", err)
	}
}

// TestRestartRollsEveryWorker: Restart (paddock restart) replaces every
// worker with a new generation through a rolling update, which
// restart --wait follows: restart-requested, rollout-progress of that
// generation, then "complete"; Rollouts lists the app meanwhile.
func TestRestartRollsEveryWorker(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    rollout: {maxSurge: 1, maxUnavailable: 0}
    env: {PADDOCK_TEST_HELPER: serve}
`, nil)
	h.forks(2)
	old := h.workers()
	h.readyAll(old)
	info, err := h.sup.Restart(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if info.Workers != 2 || info.Generation != old[0].Generation+"-r1" {
		t.Errorf("restart: %+v, want 2 workers and generation %s-r1", info, old[0].Generation)
	}
	req := h.waitEvent("restart-requested", isType(EventRestartRequested))
	if req.Generation != info.Generation || req.Detail != "rolling restart of 2 workers" {
		t.Errorf("restart-requested %+v", req)
	}
	h.waitEvent("progress", func(e Event) bool { return e.Type == EventRolloutProgress && e.Generation == info.Generation })
	if ro, err := h.sup.Rollouts(t.Context()); err != nil || ro["web"].Old == 0 {
		t.Errorf("Rollouts during the restart: %+v %v", ro, err)
	}
	h.driveRollout(nil)
	h.waitRetired()
	if e := h.seen[slices.IndexFunc(h.seen, isComplete)]; e.Generation != info.Generation {
		t.Errorf("complete for generation %s, want %s", e.Generation, info.Generation)
	}
	if ro, err := h.sup.Rollouts(t.Context()); err != nil || len(ro) != 0 {
		t.Errorf("Rollouts after the restart: %+v %v", ro, err)
	}
	for _, w := range h.workers() {
		if w.Generation != info.Generation || slices.ContainsFunc(old, func(o WorkerInfo) bool { return o.ID == w.ID }) {
			t.Errorf("worker %d of generation %s survived the restart", w.ID, w.Generation)
		}
	}
}
