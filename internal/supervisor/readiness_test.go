package supervisor

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// readinessOf returns the supervisor's Readiness, failing the test on an
// error.
func (h *harness) readiness() Readiness {
	h.t.Helper()
	r, err := h.sup.Readiness(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// appReadiness returns app's entry of r.
func appReadiness(t testing.TB, r Readiness, app string) AppReadiness {
	t.Helper()
	for _, a := range r.Apps {
		if a.Name == app {
			return a
		}
	}
	t.Fatalf("no app %q in %+v", app, r)
	return AppReadiness{}
}

// waitApp waits until app's readiness satisfies cond and returns it.
func (h *harness) waitApp(app string, cond func(AppReadiness) bool) AppReadiness {
	h.t.Helper()
	var a AppReadiness
	testkit.WaitFor(h.t, app+"'s readiness", func() bool {
		a = appReadiness(h.t, h.readiness(), app)
		return cond(a)
	})
	return a
}

// TestReadinessCountsReadyWorkers: an app is ready once it has
// max(1, instances-maxUnavailable) workers ready, real workers that say
// so with sd_notify one at a time; an app with no instance is ready.
func TestReadinessCountsReadyWorkers(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-on-usr1, READY_DIR: $DIR}
    readiness: notify
    readyTimeout: 1h
    instances: 2
  idle:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
    instances: 0
`)
	ws := h.waitWorkers("web running", running("web", 2))
	h.waitReady(ws) // their SIGUSR1 handlers are in place
	r := h.readiness()
	web := appReadiness(t, r, "web")
	if web.Ready() || web.Available != 0 || web.Need != 2 || web.Instances != 2 {
		t.Fatalf("web before any worker is ready: %+v", web)
	}
	if web.Why() != "0/2 available" {
		t.Errorf("Why() = %q, want %q", web.Why(), "0/2 available")
	}
	if idle := appReadiness(t, r, "idle"); !idle.Ready() || idle.Need != 0 {
		t.Errorf("an app with no instance wanted must be ready: %+v", idle)
	}
	if r.Stopping {
		t.Error("Stopping while running")
	}

	if err := syscall.Kill(ws[0].PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// Available once ready for minReadyTime (1s by default).
	web = h.waitApp("web", func(a AppReadiness) bool { return a.Available == 1 })
	if web.Ready() || web.Why() != "1/2 available" {
		t.Fatalf("web with one worker of two ready: %+v", web)
	}
	if err := syscall.Kill(ws[1].PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitApp("web", AppReadiness.Ready)
}

// TestReadinessMaxUnavailable: with rollout.maxUnavailable: 1, an app of
// two workers is ready with one of them available.
func TestReadinessMaxUnavailable(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-on-usr1, READY_DIR: $DIR}
    readiness: notify
    readyTimeout: 1h
    instances: 2
    rollout: {maxUnavailable: 1}
`)
	ws := h.waitWorkers("web running", running("web", 2))
	h.waitReady(ws)
	if web := appReadiness(t, h.readiness(), "web"); web.Ready() || web.Need != 1 {
		t.Fatalf("web with no worker ready: %+v", web)
	}
	if err := syscall.Kill(ws[1].PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if web := h.waitApp("web", func(a AppReadiness) bool { return a.Available == 1 }); !web.Ready() {
		t.Fatalf("web with one worker of two ready, maxUnavailable 1: %+v", web)
	}
}

// TestReadinessCrashLoop: a crash-looping app is not ready and says so; a
// critical one is Failing.
func TestReadinessCrashLoop(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  bad:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1"}
    critical: true
    failAfter: 1h
    backoff: {initial: 10ms, max: 10s}
`)
	// An exit counts as quick when the worker did not stay up for
	// backoff.max: 10s leaves a slow start of the race-built helper quick.
	h.waitEvent("crash loop", isType(EventCrashLoop))
	bad := appReadiness(t, h.readiness(), "bad")
	if bad.Ready() || !bad.Failing() || bad.CrashLoop == "" {
		t.Fatalf("a critical app crash-looping: %+v", bad)
	}
}

// TestReadinessBlockedLoop: a loop that does not take requests makes
// Readiness return the caller's deadline; once Run returned, ErrNotRunning.
func TestReadinessBlockedLoop(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
`)
	if _, err := h.sup.Readiness(context.Background()); err != nil {
		t.Fatal(err)
	}
	block, blocked := make(chan struct{}), make(chan struct{})
	go func() {
		_ = h.sup.do(context.Background(), func(*owner) { close(blocked); <-block })
	}()
	<-blocked
	// The loop is held in the request above: no deadline is short enough
	// to be missed by a loop that could answer.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := h.sup.Readiness(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Readiness of a blocked loop: %v, want %v", err, context.DeadlineExceeded)
	}
	close(block)
	if _, err := h.sup.Readiness(context.Background()); err != nil {
		t.Fatalf("after the loop is released: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sup.Readiness(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Readiness after Run returned: %v, want ErrNotRunning", err)
	}
}

// TestReadinessMinReadyTime: a ready worker counts as available only once
// it has been ready for minReadyTime.
func TestReadinessMinReadyTime(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
    minReadyTime: 1h
`)
	h.waitWorkers("web ready", func(ws []WorkerInfo) bool { return len(ws) == 1 && ws[0].Ready })
	if web := appReadiness(t, h.readiness(), "web"); web.Ready() || web.Available != 0 || web.Why() != "0/1 available" {
		t.Fatalf("web ready for less than its minReadyTime: %+v", web)
	}
}
