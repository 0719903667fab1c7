package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// Rolling updates, on the fake seam (fake_test.go): readiness comes from
// the test (READY=1 through the loop's notify path), so every step of a
// rollout is seen, in order.

// version returns the VERSION a worker was started with.
func (h *fakeHarness) version(id int) string {
	h.t.Helper()
	return envOf(h.procs.worker(h.t, id).spec.Env, "VERSION")
}

// isComplete matches the end of a rolling update.
func isComplete(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" }

// readyAll makes every live worker of ws that is not ready say READY=1.
func (h *fakeHarness) readyAll(ws []WorkerInfo) {
	h.t.Helper()
	for _, w := range ws {
		if w.PID != 0 && !w.Ready && w.Phase == reconcile.Running {
			h.ready(w.ID)
		}
	}
}

// driveRollout carries a rolling update to its end as its workers would:
// the new workers the loop starts say READY=1, time passes for
// minReadyTime (the default, 1s, at a time), and retired workers exit. It
// returns once the update is complete and the retired workers exited,
// with check called on the workers after each step.
func (h *fakeHarness) driveRollout(check func([]WorkerInfo)) {
	h.t.Helper()
	from := len(h.drain())
	for steps := 0; ; steps++ {
		if steps > 200 {
			h.t.Fatalf("the rolling update does not end; workers:%s", summary(h.workers()))
		}
		ws := h.workers()
		if check != nil {
			check(ws)
		}
		if slices.ContainsFunc(h.drain()[from:], isComplete) {
			h.waitRetired()
			return
		}
		switch {
		case slices.ContainsFunc(ws, func(w WorkerInfo) bool { return w.PID != 0 && w.Phase == reconcile.Running && !w.Ready }):
			h.readyAll(ws)
		case slices.ContainsFunc(ws, func(w WorkerInfo) bool { return w.PID != 0 && w.Phase == reconcile.Stopping }):
			h.waitEvent("an exit", isType(EventExit))
		default:
			h.advance(time.Second)
		}
	}
}

// waitRetired waits until no worker is stopping: every retired worker
// exited.
func (h *fakeHarness) waitRetired() {
	h.t.Helper()
	for slices.ContainsFunc(h.workers(), func(w WorkerInfo) bool { return w.PID != 0 && w.Phase == reconcile.Stopping }) {
		h.waitEvent("an exit", isType(EventExit))
	}
}

func TestRollingUpdateKeepsReadyWorkers(t *testing.T) {
	for _, tt := range []struct{ surge, unavailable int }{{1, 0}, {0, 1}, {2, 1}} {
		t.Run(fmt.Sprintf("surge%d-unavailable%d", tt.surge, tt.unavailable), func(t *testing.T) {
			t.Parallel()
			const instances = 3
			const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: 3
    readiness: notify
    readyTimeout: 60s
    killTimeout: 60s
    rollout: {maxSurge: %d, maxUnavailable: %d}
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%d"}
`
			h := startFake(t, fmt.Sprintf(manifestFmt, tt.surge, tt.unavailable, 1), nil)
			h.forks(instances)
			old := h.workers()
			h.readyAll(old)
			h.apply(fmt.Sprintf(manifestFmt, tt.surge, tt.unavailable, 2))
			// Each step: the state the loop left, checked.
			minReady, maxAlive := instances, 0
			h.driveRollout(func(ws []WorkerInfo) {
				ready, alive := 0, 0
				for _, w := range live(ws, "web") {
					alive++
					if w.Ready {
						ready++
					}
				}
				minReady, maxAlive = min(minReady, ready), max(maxAlive, alive)
			})
			h.waitRetired()
			t.Logf("at least %d ready, at most %d alive", minReady, maxAlive)
			if minReady < instances-tt.unavailable {
				t.Errorf("ready workers fell to %d during the rollout, below instances-maxUnavailable = %d", minReady, instances-tt.unavailable)
			}
			if maxAlive > instances+tt.surge {
				t.Errorf("%d workers running at once, above instances+maxSurge = %d", maxAlive, instances+tt.surge)
			}
			final := h.workers()
			if len(final) != instances {
				t.Errorf("final workers %s, want %d", summary(final), instances)
			}
			for _, w := range final {
				if slices.ContainsFunc(old, func(o WorkerInfo) bool { return o.ID == w.ID }) || h.version(w.ID) != "2" || !w.Ready {
					t.Errorf("worker %d is not of the new version, ready", w.ID)
				}
			}
			h.drain()
			for _, w := range old {
				i := slices.IndexFunc(h.seen, func(e Event) bool { return e.Type == EventExit && e.Worker == w.ID })
				if i < 0 || !h.seen[i].Intended || h.seen[i].ExitCode != 0 {
					t.Errorf("old worker %d: no graceful intended exit:%s", w.ID, describe(h.seen))
				}
			}
		})
	}
}

// TestMinReadyTimeHoldsTheRollout: a new worker counts as available, and
// an old one is retired for it, only once it has stayed ready for
// minReadyTime.
func TestMinReadyTimeHoldsTheRollout(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 10s
    rollout: {maxSurge: 1, maxUnavailable: 0}
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%d"}
`
	h := startFake(t, fmt.Sprintf(manifestFmt, 1), nil)
	h.forks(2)
	h.readyAll(h.workers())
	h.apply(fmt.Sprintf(manifestFmt, 2))
	fresh := h.waitEvent("fork of the new version", isType(EventFork))
	h.ready(fresh.Worker)
	h.advance(10*time.Second - time.Nanosecond)
	if ws := h.workers(); len(live(ws, "web")) != 3 {
		t.Fatalf("before minReadyTime: %s, want the 2 old workers and the new one", summary(ws))
	}
	for _, e := range h.drain() {
		if e.Type == EventStopping {
			t.Fatalf("an old worker was stopped before the new one was available: %s", describe([]Event{e}))
		}
	}
	h.advance(time.Nanosecond)
	st := h.waitEvent("an old worker retired", isType(EventStopping))
	if st.Generation == fresh.Generation {
		t.Errorf("the new worker was stopped: %s", describe([]Event{st}))
	}
}

// TestStalledRolloutKeepsOldWorkers: a rollout whose new workers never
// become ready (readyTimeout), or exit before they could, stalls and says
// why; the old workers keep serving, undisturbed, until a later change
// fixes it.
func TestStalledRolloutKeepsOldWorkers(t *testing.T) {
	for _, bad := range []struct{ name, helper, readyTimeout, reason string }{
		{"never ready", "serve", "300ms", "was not ready within its readyTimeout"},
		{"exits before ready", "exit:1", "60s", "exited before it was ready"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			t.Parallel()
			const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: %s
    killTimeout: 60s
    backoff: {initial: 50ms, max: 1s}
    env: {PADDOCK_TEST_HELPER: "%s", VERSION: "%d"}
`
			h := startFake(t, fmt.Sprintf(manifestFmt, "60s", "serve", 1), nil)
			h.forks(2)
			old := h.workers()
			h.readyAll(old)
			last := max(old[0].ID, old[1].ID)
			h.apply(fmt.Sprintf(manifestFmt, bad.readyTimeout, bad.helper, 2))
			if bad.helper == "serve" {
				h.waitEvent("fork of the new version", func(e Event) bool { return e.Type == EventFork && e.Worker > last })
				h.advance(300 * time.Millisecond)
			}
			stalled := h.waitEvent("rollout-stalled", isType(EventRolloutStalled))
			if !strings.Contains(stalled.Detail, bad.reason) {
				t.Errorf("stalled because %q, want %q", stalled.Detail, bad.reason)
			}
			if bad.helper == "exit:1" {
				// The new version's workers crash and are replaced, again.
				for range 3 {
					r := h.waitEvent("a restart of the new version", func(e Event) bool { return e.Type == EventRestart && e.Worker > last })
					h.advance(r.Delay)
				}
				// And once more: one of them is in backoff now.
				h.waitEvent("a restart of the new version", func(e Event) bool { return e.Type == EventRestart && e.Worker > last })
			}
			// The old workers stay, ready.
			ws := h.workers()
			for _, o := range old {
				i := slices.IndexFunc(ws, func(w WorkerInfo) bool { return w.ID == o.ID })
				if i < 0 || ws[i].PID != o.PID || !ws[i].Ready || ws[i].Phase != reconcile.Running {
					t.Errorf("old worker %d was disturbed by a stalled rollout: %s", o.ID, summary(ws))
				}
			}
			for _, e := range h.drain() {
				if (e.Type == EventStopping || e.Type == EventExit) && (e.Worker == old[0].ID || e.Worker == old[1].ID) {
					t.Errorf("an old worker was stopped: %s", describe([]Event{e}))
				}
			}
			ro, err := h.sup.Rollouts(context.Background())
			if err != nil || ro["web"].Stalled == "" {
				t.Errorf("the app is not reported stalled: %+v %v", ro, err)
			}
			// A later change fixes it.
			h.apply(fmt.Sprintf(manifestFmt, "60s", "serve", 3))
			h.driveRollout(nil)
			final := h.workers()
			if len(live(final, "web")) != 2 {
				t.Errorf("final workers %s, want 2", summary(final))
			}
			for _, w := range live(final, "web") {
				if v := h.version(w.ID); v != "3" || !w.Ready {
					t.Errorf("worker %d runs VERSION %s (ready %v), want 3, ready", w.ID, v, w.Ready)
				}
			}
		})
	}
}

func TestChangeDuringRolloutRetargets(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 60s
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%s"}
`
	h := startFake(t, fmt.Sprintf(manifestFmt, "A"), nil)
	h.forks(2)
	h.readyAll(h.workers())
	// B's worker is never made ready; C arrives while it waits.
	h.apply(fmt.Sprintf(manifestFmt, "B"))
	forkB := h.waitEvent("fork of B", func(e Event) bool { return e.Type == EventFork && e.Worker > 2 })
	h.apply(fmt.Sprintf(manifestFmt, "C"))
	h.waitEvent("B's worker retired", func(e Event) bool { return e.Type == EventExit && e.Worker == forkB.Worker && e.Intended })
	h.driveRollout(nil)
	h.waitRetired()
	final := h.workers()
	if len(final) != 2 {
		t.Errorf("final workers %s, want 2", summary(final))
	}
	for _, w := range final {
		if v := h.version(w.ID); v != "C" || !w.Ready {
			t.Errorf("worker %d runs VERSION %s, want C: no worker stays on an intermediate version", w.ID, v)
		}
	}
	for _, e := range h.seen {
		if e.Type == EventReady && e.Worker == forkB.Worker {
			t.Errorf("B's worker, which never said READY=1, became ready")
		}
	}
}

// TestRollingRestartOfCrashLoopStalls: a rolling restart of an app whose
// workers all crash right after they start, so that no old worker is left,
// is reported stalled (with minReadyTime, a worker that was ready for a
// moment is not available), never complete.
func TestRollingRestartOfCrashLoopStalls(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  crash:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:3"}
    instances: 2
    minReadyTime: 1h
    backoff: {initial: 10ms, max: 1s}
`, nil)
	h.waitEvent("a first crash", func(e Event) bool { return e.Type == EventRestart && e.App == "crash" })
	info, err := h.sup.Restart(t.Context(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	for {
		e := h.waitEvent("the rollout stalled or complete, or a restart", func(e Event) bool {
			return e.Type == EventRestart || (e.Generation == info.Generation && (e.Type == EventRolloutStalled || isComplete(e)))
		})
		if e.Type == EventRestart {
			h.advance(e.Delay)
			continue
		}
		if e.Type != EventRolloutStalled || !strings.Contains(e.Detail, "exited within minReadyTime") {
			t.Fatalf("got %s %q, want rollout-stalled: ... exited within minReadyTime", e.Type, e.Detail)
		}
		break
	}
}

// TestReloadKeepsUnchangedApps: a reload that changes one app replaces
// that app's workers and leaves the others alone.
func TestReloadKeepsUnchangedApps(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
  api:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%d"}
`
	h := startFake(t, fmt.Sprintf(manifestFmt, 1), func(h *harness, o *Options) {
		path := filepath.Join(h.dir, "paddock.yaml")
		o.Load = func() (*manifest.Set, error) { return manifest.Load([]string{path}, manifest.CurrentHost()) }
	})
	h.forks(4)
	before := h.workers()
	h.write(fmt.Sprintf(manifestFmt, 2))
	if _, err := h.sup.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	reload := h.waitEvent("reload", isType(EventReload))
	if reload.App != "api" || reload.Detail != "api: updated (env.VERSION)" {
		t.Errorf("reload %q for %q", reload.Detail, reload.App)
	}
	h.driveRollout(nil)
	h.waitRetired()
	after := h.workers()
	if !slices.Equal(pids(after, "web"), pids(before, "web")) {
		t.Errorf("web was not changed but its workers were: %v, then %v", pids(before, "web"), pids(after, "web"))
	}
	if len(pids(after, "api")) != 2 {
		t.Errorf("api workers after the reload: %s", summary(after))
	}
	for _, w := range after {
		if w.App != "api" {
			continue
		}
		if slices.Contains(pids(before, "api"), w.PID) {
			t.Errorf("api worker pid %d survived a change of api's env", w.PID)
		}
		if h.version(w.ID) != "2" {
			t.Errorf("api worker %d runs the old spec", w.ID)
		}
	}
	// The fake clock stood still: the events after the reload are those
	// received after it.
	seen := h.drain()
	at := slices.IndexFunc(seen, func(e Event) bool { return e.Type == EventReload })
	for _, e := range seen[at:] {
		if e.App == "web" && (e.Type == EventStopping || e.Type == EventFork) {
			t.Errorf("web touched by a reload that did not change it: %s", describe([]Event{e}))
		}
	}
}
