package supervisor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// releaseApp is the manifest of one release of app web (serveRelease):
// policy, $RELEASE, VERSION, readyTimeout, minReadyTime and
// rollout.onStall. A cluster worker (rr) is package worker's, with its IPC
// channel; the others take the socket as LISTEN_FDS.
func releaseApp(policy string, port int, release string, version int, readyTimeout, minReady, onStall string) string {
	ipc := "off"
	if policy == "rr" {
		ipc = "node"
	}
	return fmt.Sprintf(`
apps:
  web:
    exec: $SELF
    instances: 2
    schedulingPolicy: %s
    ipc: %s
    listen: ["127.0.0.1:%d"]
    readiness: notify
    readyTimeout: %s
    minReadyTime: %s
    killTimeout: 60s
    backoff: {initial: 100ms, max: 1s}
    rollout: {maxSurge: 1, maxUnavailable: 0, onStall: %s}
    env: {PADDOCK_TEST_HELPER: release, RELEASE: %s, PORT: "%d", VERSION: "%d"}
`, policy, ipc, port, readyTimeout, minReady, onStall, release, port, version)
}

// TestBadReleasesUnderLoad releases, while clients send requests without
// pause (4 of them, a new connection per request), three bad releases in
// turn: one that exits 200ms after it is ready, one that is never ready
// (readiness notify, readyTimeout 1s), one that crashes at start. Each
// stalls the rollout, reported by rollout-stalled and the status, and the
// workers of the first release serve on, the same processes. A good
// release then completes; and with rollout.onStall: rollback, a bad
// release after it is rolled back to it, its workers untouched, and the
// status says the app runs another generation than its manifest's. No
// request fails. For schedulingPolicy none and reuseport (LISTEN_FDS
// workers) and rr (cluster workers of package worker).
func TestBadReleasesUnderLoad(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"none", "reuseport", "rr"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			app := func(release string, version int, readyTimeout, minReady, onStall string) string {
				return releaseApp(policy, port, release, version, readyTimeout, minReady, onStall)
			}
			h := start(t, app("good", 1, "60s", "1s", "keep"))
			first := h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
				return len(ws) == 2 && ws[0].Ready && ws[1].Ready && ws[0].PID != 0 && ws[1].PID != 0
			})
			stop := make(chan struct{})
			res, wait := runLoad("tcp", fmt.Sprintf("127.0.0.1:%d", port), 4, 1<<40, stop)
			stopLoad := sync.OnceFunc(func() { close(stop); wait() })
			defer stopLoad()
			res.waitAnswered(t, 100)

			for i, bad := range []struct{ release, readyTimeout, reason string }{
				{"exit-after-ready", "60s", "exited within minReadyTime (1h0m0s) of becoming ready"},
				{"never-ready", "1s", "was not ready within its readyTimeout"},
				{"crash", "60s", "exited before it was ready"},
			} {
				h.apply(app(bad.release, 2+i, bad.readyTimeout, "1h", "keep"))
				gen := h.waitEvent("the release's reload", isType(EventReload)).Generation
				ev := h.waitEvent(bad.release+" stalled", func(e Event) bool { return e.Type == EventRolloutStalled && e.Generation == gen })
				if !strings.Contains(ev.Detail, bad.reason) {
					t.Errorf("%s: stalled %q, want %q", bad.release, ev.Detail, bad.reason)
				}
				if bad.release != "never-ready" && (ev.Stall == nil || ev.Stall.Exit == nil || ev.Stall.Exit.Code == 0) {
					t.Errorf("%s: rollout-stalled carries no failed exit: %+v", bad.release, ev.Stall)
				}
				if st := h.appStatus("web"); st.Rollout == nil || !strings.Contains(st.Rollout.Stalled, bad.reason) || st.Generation != gen {
					t.Errorf("%s: status %+v, want generation %s stalled: %s", bad.release, st.Rollout, gen, bad.reason)
				}
				res.waitAnswered(t, 100)
				h.checkServing("the first release, after "+bad.release, first)
			}

			// A good release completes.
			h.apply(app("good", 5, "60s", "1s", "keep"))
			gen := h.waitEvent("the good release's reload", isType(EventReload)).Generation
			h.waitEvent("its rollout complete", func(e Event) bool { return isComplete(e) && e.Generation == gen })
			good := h.waitWorkers("the first release's workers gone", func(ws []WorkerInfo) bool {
				return len(ws) == 2 && ws[0].Generation == gen && ws[1].Generation == gen && ws[0].Ready && ws[1].Ready
			})
			res.waitAnswered(t, 100)

			// With rollout.onStall: rollback, a bad release is rolled
			// back to the good one.
			h.apply(app("exit-after-ready", 6, "60s", "1h", "rollback"))
			from := h.waitEvent("the release's reload", isType(EventReload)).Generation
			rb := h.waitEvent("the rollback", isType(EventRolloutRollback))
			if rb.FromGeneration != from || rb.Generation != gen {
				t.Errorf("rolled back from %s to %s, want from %s to %s", rb.FromGeneration, rb.Generation, from, gen)
			}
			h.waitEvent("the rollback complete", func(e Event) bool { return isComplete(e) && e.Generation == gen })
			h.checkServing("the good release, after the rollback", good)
			if st := h.appStatus("web"); st.RolledBack == nil || st.RolledBack.From != from || st.RolledBack.To != gen || st.Generation != gen {
				t.Errorf("status after the rollback: generation %s, rolled back %+v", st.Generation, st.RolledBack)
			}
			res.waitAnswered(t, 100)

			stopLoad()
			t.Logf("%s: bad releases and a rollback under load: %s", policy, res)
			if res.refused.Load() != 0 || res.failed.Load() != 0 || res.ok.Load() == 0 {
				t.Errorf("requests failed: %s", res)
			}
		})
	}
}

// checkServing checks that the workers ws still run, ready, as the same
// processes.
func (h *harness) checkServing(what string, ws []WorkerInfo) {
	h.t.Helper()
	cur, err := h.sup.Workers(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, w := range ws {
		found := false
		for _, c := range cur {
			if c.ID == w.ID {
				found = c.PID == w.PID && c.Ready && c.Phase == 0
			}
		}
		if !found {
			h.t.Errorf("%s: worker %d (pid %d) does not serve as it did: %+v", what, w.ID, w.PID, cur)
		}
	}
}
