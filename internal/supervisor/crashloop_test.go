package supervisor

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// The crash-loop rule as the owner loop applies it, on the fake seam
// (fake_test.go): exits, events, status and the end of Run, to the
// nanosecond of the fake clock. reconcile's TestCrashLoop holds the rule's
// own cases.

// appStatus returns the status of app name, failing the test when there
// is none.
func (h *fakeHarness) appStatus(name string) AppStatus {
	h.t.Helper()
	st, err := h.sup.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range st.Apps {
		if a.Name == name {
			return a
		}
	}
	h.t.Fatalf("no app %s in the status", name)
	return AppStatus{}
}

// TestCrashLoopReportedUntilWorkersStayUp: the third exit within a minute
// of workers that did not stay up for backoff.max starts a crash loop
// (event, status), which says the last exit's code or signal, and ends
// exactly when the replacement has been up for backoff.max.
func TestCrashLoopReportedUntilWorkersStayUp(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
    backoff: {initial: 100ms, max: 1s}
`, nil)
	crash := func(i int, kill func(p *fakeProcess)) Event {
		t.Helper()
		fork := h.waitEvent(fmt.Sprintf("fork %d", i), isType(EventFork))
		kill(h.procs.worker(t, fork.Worker))
		r := h.waitEvent(fmt.Sprintf("restart %d", i), isType(EventRestart))
		if a := h.appStatus("web"); (a.CrashLoop != nil) != (i >= 3) {
			t.Fatalf("after exit %d: crash loop %+v, want one from the third exit", i, a.CrashLoop)
		}
		return r
	}
	exit1 := func(p *fakeProcess) { p.exit(1) }
	for i := 1; i <= 3; i++ {
		h.advance(crash(i, exit1).Delay)
	}
	loop := h.waitEvent("crash-loop", isType(EventCrashLoop))
	if want := "3 exits in 60s, last exit 1"; loop.Detail != want {
		t.Errorf("crash-loop detail %q, want %q", loop.Detail, want)
	}
	a := h.appStatus("web")
	if cl := a.CrashLoop; cl.Exits != 3 || cl.Window != time.Minute || cl.LastCode != 1 || cl.LastSignal != "" ||
		!cl.FailAt.IsZero() || a.Critical {
		t.Errorf("status: critical %v, crash loop %+v; want 3 exits in 1m, last code 1, no FailAt", a.Critical, *cl)
	}
	// A fourth, by a signal.
	r := crash(4, func(p *fakeProcess) { p.kill(syscall.SIGSEGV) })
	if got, want := h.appStatus("web").CrashLoop.String(), "4 exits in 60s, last exit SIGSEGV"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	h.advance(r.Delay)
	fork := h.waitEvent("fork 5", isType(EventFork))
	// The loop is to wake when the replacement has been up for
	// backoff.max, and the crash loop ends then, not a nanosecond before.
	if at, want := h.wakeAt(), h.clock.Now().Add(time.Second); !at.Equal(want) {
		t.Fatalf("the loop wakes at %s, want %s", at.Sub(fakeEpoch), want.Sub(fakeEpoch))
	}
	h.advance(time.Second - time.Nanosecond)
	if a := h.appStatus("web"); a.CrashLoop == nil {
		t.Fatal("the crash loop ended before the worker was up for backoff.max")
	}
	h.advance(time.Nanosecond)
	ended := h.waitEvent("crash-loop-ended", isType(EventCrashLoopEnded))
	if !ended.Time.Equal(fakeEpoch.Add(100*time.Millisecond + 200*time.Millisecond + 400*time.Millisecond + 800*time.Millisecond + time.Second)) {
		t.Errorf("crash-loop-ended at %s", ended.Time.Sub(fakeEpoch))
	}
	if a := h.appStatus("web"); a.CrashLoop != nil {
		t.Errorf("crash loop %+v after it ended", *a.CrashLoop)
	}
	if ws := live(h.workers(), "web"); len(ws) != 1 || ws[0].ID != fork.Worker {
		t.Errorf("workers %s, want %d alone", summary(ws), fork.Worker)
	}
}

// TestCriticalAppFails: a critical app (critical: true, or every app with
// ExitOnFailed) whose workers exit at once fails exactly failAfter after
// its crash loop reached backoff.max: app-failed, every app stopped
// gracefully (the healthy app's worker gets its killSignal), nothing
// restarted, and Run returns an *AppFailedError. An app that is not
// critical is retried for ever.
func TestCriticalAppFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		critical     bool
		exitOnFailed bool
		wantFail     bool
	}{
		{"critical", true, false, true},
		{"exit-on-failed", false, true, true},
		{"not critical", false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startFake(t, fmt.Sprintf(`
apps:
  bad:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: "exit:1"}
    backoff: {initial: 10ms, max: 40ms}
    critical: %v
    failAfter: 1s
  good:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
`, tt.critical), func(_ *harness, o *Options) { o.ExitOnFailed = tt.exitOnFailed })
			good := h.waitEvent("good's fork", func(e Event) bool { return e.Type == EventFork && e.App == "good" })
			// Exits at 0, 10ms and 30ms: the third starts the loop, its
			// replacement delayed by backoff.max (40ms) already.
			var loop Event
			for {
				e := h.waitEvent("restart, crash-loop or app-failed", func(e Event) bool {
					return e.App == "bad" && (e.Type == EventRestart || e.Type == EventCrashLoop || e.Type == EventAppFailed)
				})
				if e.Type == EventCrashLoop {
					loop = e
					if !tt.wantFail {
						if a := h.appStatus("bad"); a.Critical || a.CrashLoop == nil || !a.CrashLoop.FailAt.IsZero() {
							t.Fatalf("status of an app that is not critical: critical %v crash loop %+v", a.Critical, a.CrashLoop)
						}
					} else if a := h.appStatus("bad"); !a.Critical || !a.CrashLoop.FailAt.Equal(loop.Time.Add(time.Second)) {
						t.Fatalf("status: critical %v crash loop %+v; want critical, failing at %s", a.Critical, a.CrashLoop,
							loop.Time.Add(time.Second).Sub(fakeEpoch))
					}
					continue
				}
				if e.Type == EventAppFailed {
					if !tt.wantFail {
						t.Fatalf("an app that is not critical failed: %s", e.Detail)
					}
					if loop.Time.IsZero() || !e.Time.Equal(loop.Time.Add(time.Second)) {
						t.Fatalf("app-failed at %s, want failAfter (1s) after the crash loop began at %s",
							e.Time.Sub(fakeEpoch), loop.Time.Sub(fakeEpoch))
					}
					break
				}
				if h.clock.Now().After(fakeEpoch.Add(3 * time.Second)) {
					if tt.wantFail {
						t.Fatalf("no app-failed 3s after the start (failAfter 1s); crash-loop event: %v", !loop.Time.IsZero())
					}
					break // far past failAfter, and still retried
				}
				h.advance(e.Delay)
			}
			if !tt.wantFail {
				return
			}
			if want := fakeEpoch.Add(30 * time.Millisecond); !loop.Time.Equal(want) {
				t.Errorf("crash loop began at %s, want 30ms", loop.Time.Sub(fakeEpoch))
			}
			var err error
			select {
			case err = <-h.done:
				h.done <- err // for the harness's cleanup
			case <-time.After(patience):
				t.Fatal("Run did not return after app-failed")
			}
			var failed *AppFailedError
			if !errors.As(err, &failed) || failed.App != "bad" || failed.FailAfter != time.Second || failed.Killed {
				t.Fatalf("Run returned %v, want an *AppFailedError for bad", err)
			}
			signals, _, _ := h.procs.worker(t, good.Worker).record()
			if len(signals) != 1 || signals[0] != syscall.SIGTERM {
				t.Errorf("good's worker got %v, want SIGTERM alone (a graceful stop)", signals)
			}
			var afterFail bool
			for _, e := range h.drain() {
				if e.Type == EventAppFailed {
					afterFail = true
				}
				if afterFail && e.Type == EventFork {
					t.Errorf("a worker was started after app-failed: %s/%d", e.App, e.Worker)
				}
			}
		})
	}
}

// TestCriticalByReload: making an app critical reconfigures it, with no
// new generation: its workers are kept, the reload says what changed, and
// the status says it is critical from then on.
func TestCriticalByReload(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
    critical: %v
`
	h := startFake(t, fmt.Sprintf(manifestFmt, false), nil)
	h.forks(2)
	before := live(h.workers(), "web")
	set := load(t, h.dir, fmt.Sprintf(manifestFmt, true))
	changes, err := h.sup.Apply(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].String() != "web: reconfigured (critical)" {
		t.Errorf("changes %v, want [web: reconfigured (critical)]", changes)
	}
	after := live(h.workers(), "web")
	if len(after) != 2 || after[0].ID != before[0].ID || after[1].ID != before[1].ID {
		t.Errorf("workers %s after the reload, want %s kept", summary(after), summary(before))
	}
	if a := h.appStatus("web"); !a.Critical {
		t.Error("the app is not critical after the reload")
	}
}
