package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

func pids(ws []WorkerInfo, app string) []int {
	var out []int
	for _, w := range ws {
		if w.App == app && w.PID != 0 {
			out = append(out, w.PID)
		}
	}
	return out
}

func TestReloadInvalidThenValid(t *testing.T) {
	const valid = `
apps:
  web:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: serve}
`
	h := startWatching(t, fmt.Sprintf(valid, 2), 50*time.Millisecond)
	before := h.waitWorkers("2 workers", running("web", 2))

	h.write(`
apps:
  web:
    exec: $SELF
    instances: -1
    restart: sometimes
`)
	failed := h.waitEvent("reload-failed", isType(EventReloadFailed))
	if !strings.Contains(failed.Detail, "2 errors") || !strings.Contains(failed.Detail, "apps.web.instances") {
		t.Errorf("reload-failed detail %q", failed.Detail)
	}
	// The running set is untouched.
	if now := h.waitWorkers("2 workers", running("web", 2)); !slices.Equal(pids(now, "web"), pids(before, "web")) {
		t.Errorf("workers changed after an invalid manifest: %v, then %v", before, now)
	}

	h.write(fmt.Sprintf(valid, 3))
	reload := h.waitEvent("reload", isType(EventReload))
	if reload.Detail != "web: scaled 2→3" {
		t.Errorf("reload detail %q, want %q", reload.Detail, "web: scaled 2→3")
	}
	after := h.waitWorkers("3 workers", running("web", 3))
	if !slices.Equal(pids(after, "web")[:2], pids(before, "web")) {
		t.Errorf("a scale-up replaced workers: %v, then %v", before, after)
	}
	for _, e := range h.drain() {
		if e.Type == EventStopping {
			t.Errorf("a worker was stopped: %s", describe([]Event{e}))
		}
	}
}

func TestReloadKeepsUnchangedApps(t *testing.T) {
	const manifest = `
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
	h := startWatching(t, fmt.Sprintf(manifest, 1), 50*time.Millisecond)
	before := h.waitWorkers("4 workers", func(ws []WorkerInfo) bool { return len(pids(ws, "web")) == 2 && len(pids(ws, "api")) == 2 })
	h.write(fmt.Sprintf(manifest, 2))
	reload := h.waitEvent("reload", isType(EventReload))
	if reload.App != "api" || reload.Detail != "api: updated (env.VERSION)" {
		t.Errorf("reload %q for %q", reload.Detail, reload.App)
	}
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	after := h.waitWorkers("4 workers", func(ws []WorkerInfo) bool { return len(ws) == 4 })
	if !slices.Equal(pids(after, "web"), pids(before, "web")) {
		t.Errorf("web was not changed but its workers were: %v, then %v", pids(before, "web"), pids(after, "web"))
	}
	for _, p := range pids(after, "api") {
		if slices.Contains(pids(before, "api"), p) {
			t.Errorf("api worker pid %d survived a change of api's env", p)
		}
		if environ(t, p)["VERSION"] != "2" {
			t.Errorf("api worker pid %d runs the old spec", p)
		}
	}
	for _, e := range h.drain() {
		if e.App == "web" && (e.Type == EventStopping || e.Type == EventFork) && e.Time.After(reload.Time) {
			t.Errorf("web touched by a reload that did not change it: %s", describe([]Event{e}))
		}
	}
}

func TestRapidEditsConverge(t *testing.T) {
	const manifest = `
apps:
  web:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%d"}
`
	const debounce = time.Second
	h := startWatching(t, fmt.Sprintf(manifest, 2, 0), debounce)
	h.waitWorkers("2 workers", running("web", 2))
	// The edits come faster than the debounce: unless the machine stalls
	// this test between two of them, for so long that the watcher may
	// take the pause for the end of the edits, or the whole stream takes
	// so long that the watcher reports it at its maximum wait (10
	// debounce intervals), no intermediate version is ever applied. The
	// longest pause and the whole stream are measured.
	var pause time.Duration
	first := time.Now()
	last := first
	for i := 1; i <= 100; i++ {
		h.write(fmt.Sprintf(manifest, 1+i%5, i))
		pause, last = max(pause, time.Since(last)), time.Now()
	}
	stream := time.Since(first)
	// The last edit: 100%5 = 0, so 1 instance of VERSION 100.
	h.waitEvent("reload", isType(EventReload))
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	ws := h.waitWorkers("1 worker", running("web", 1))
	if v := environ(t, ws[0].PID)["VERSION"]; v != "100" {
		t.Errorf("the worker runs VERSION %s, want 100", v)
	}
	forks, reloads := 0, 0
	for _, e := range h.drain() {
		switch e.Type {
		case EventFork:
			forks++
		case EventReload:
			reloads++
		}
	}
	// 2 at start, 1 of the final version: no intermediate version ran.
	switch {
	case pause >= debounce/2 || stream >= watch.MaxWaitFactor*debounce/2:
		t.Logf("the edits paused for %s and took %s, against a debounce of %s: %d forks and %d reloads, not checked", pause, stream, debounce, forks, reloads)
	case forks != 3 || reloads != 1:
		t.Errorf("%d forks and %d reloads, want 3 and 1 (the longest pause between edits: %s):%s", forks, reloads, pause, describe(h.seen))
	}
}

// sampler polls the supervisor's workers continuously and records the
// fewest ready and the most live workers of an app (not counting those
// already asked to stop: they drain, and maxSurge does not bound them, as
// in Kubernetes).
type sampler struct {
	mu                 sync.Mutex
	minReady, maxAlive int
	samples            int
	stop               context.CancelFunc
	done               chan struct{}
}

func sample(h *harness, app string) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{minReady: 1 << 30, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			ws, err := h.sup.Workers(ctx)
			if err != nil {
				return
			}
			ready, alive := 0, 0
			for _, w := range ws {
				if w.App != app || w.PID == 0 {
					continue
				}
				if w.Phase != reconcile.Running {
					continue
				}
				alive++
				if w.Ready {
					ready++
				}
			}
			s.mu.Lock()
			s.minReady = min(s.minReady, ready)
			s.maxAlive = max(s.maxAlive, alive)
			s.samples++
			s.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	return s
}

func (s *sampler) finish() (minReady, maxAlive, samples int) {
	s.stop()
	<-s.done
	return s.minReady, s.maxAlive, s.samples
}

func TestRollingUpdateKeepsReadyWorkers(t *testing.T) {
	tests := []struct {
		surge, unavailable int
	}{{1, 0}, {0, 1}, {2, 1}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("surge%d-unavailable%d", tt.surge, tt.unavailable), func(t *testing.T) {
			const instances = 3
			manifest := `
apps:
  web:
    exec: $SELF
    instances: 3
    readiness: notify
    readyTimeout: 60s
    killTimeout: 60s
    rollout: {maxSurge: %d, maxUnavailable: %d}
    env: {PADDOCK_TEST_HELPER: "notify-serve:150ms", VERSION: "%d", READY_DIR: "$DIR"}
`
			h := startWatching(t, fmt.Sprintf(manifest, tt.surge, tt.unavailable, 1), 50*time.Millisecond)
			old := h.waitWorkers("3 ready workers", func(ws []WorkerInfo) bool {
				return len(ws) == instances && !slices.ContainsFunc(ws, func(w WorkerInfo) bool { return !w.Ready })
			})
			h.waitReady(old)
			s := sample(h, "web")
			h.write(fmt.Sprintf(manifest, tt.surge, tt.unavailable, 2))
			h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
			final := h.waitWorkers("3 ready workers", func(ws []WorkerInfo) bool {
				return len(ws) == instances && !slices.ContainsFunc(ws, func(w WorkerInfo) bool { return !w.Ready })
			})
			minReady, maxAlive, samples := s.finish()
			t.Logf("%d samples: at least %d ready, at most %d alive", samples, minReady, maxAlive)
			if minReady < instances-tt.unavailable {
				t.Errorf("ready workers fell to %d during the rollout, below instances-maxUnavailable = %d", minReady, instances-tt.unavailable)
			}
			if maxAlive > instances+tt.surge {
				t.Errorf("%d workers running at once, above instances+maxSurge = %d", maxAlive, instances+tt.surge)
			}
			for _, w := range final {
				if slices.Contains(pids(old, "web"), w.PID) || environ(t, w.PID)["VERSION"] != "2" {
					t.Errorf("worker %d (pid %d) is not of the new version", w.ID, w.PID)
				}
			}
			for _, w := range old {
				e := h.waitEvent(fmt.Sprintf("exit of web/%d", w.ID), func(e Event) bool { return e.Type == EventExit && e.Worker == w.ID })
				if !e.Intended || e.ExitCode != 0 {
					t.Errorf("old worker %d: exit %+v, want a graceful intended exit", w.ID, e)
				}
			}
		})
	}
}

func TestStalledRolloutKeepsOldWorkers(t *testing.T) {
	// The bad versions stall for a reason that does not depend on the
	// machine's speed: a worker that never says READY=1 (only it has a
	// short readyTimeout), or one that exits before it could (it has as
	// long as any other to be ready). The good versions have all the
	// time they need.
	for _, bad := range []struct{ name, helper, readyTimeout, reason string }{
		{"never ready", "serve", "300ms", "was not ready within its readyTimeout"},
		{"exits before ready", "exit:1", "60s", "exited before it was ready"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			const manifest = `
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
			h := startWatching(t, fmt.Sprintf(manifest, "60s", "notify-serve:10ms", 1), 50*time.Millisecond)
			old := h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
				return len(ws) == 2 && ws[0].Ready && ws[1].Ready
			})
			last := max(old[0].ID, old[1].ID)
			h.write(fmt.Sprintf(manifest, bad.readyTimeout, bad.helper, 2))
			stalled := h.waitEvent("rollout-stalled", isType(EventRolloutStalled))
			if !strings.Contains(stalled.Detail, bad.reason) {
				t.Errorf("stalled because %q, want %q", stalled.Detail, bad.reason)
			}
			if bad.helper == "exit:1" {
				// Let the supervisor go on planning for a while: the
				// new version's workers crash and are replaced, again.
				for range 3 {
					h.waitEvent("a restart of the new version", func(e Event) bool { return e.Type == EventRestart && e.Worker > last })
				}
			}
			// The old workers stay, ready. Workers answers once the
			// supervisor carried out its plans up to now: a plan that
			// stopped an old worker would show.
			ws, err := h.sup.Workers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range old {
				i := slices.IndexFunc(ws, func(w WorkerInfo) bool { return w.ID == o.ID })
				if i < 0 || ws[i].PID != o.PID || !ws[i].Ready || ws[i].Phase != reconcile.Running || !alive(o.PID) {
					t.Errorf("old worker %d was disturbed by a stalled rollout: %+v", o.ID, ws)
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
			h.write(fmt.Sprintf(manifest, "60s", "notify-serve:10ms", 3))
			h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
			final := h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
				return len(ws) == 2 && ws[0].Ready && ws[1].Ready && ws[0].PID != 0 && ws[1].PID != 0
			})
			for _, w := range final {
				if v := environ(t, w.PID)["VERSION"]; v != "3" {
					t.Errorf("worker %d runs VERSION %s, want 3", w.ID, v)
				}
			}
		})
	}
}

func TestChangeDuringRolloutRetargets(t *testing.T) {
	const manifest = `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 60s
    env: {PADDOCK_TEST_HELPER: "%s", VERSION: "%s"}
`
	h := startWatching(t, fmt.Sprintf(manifest, "notify-serve:10ms", "A"), 50*time.Millisecond)
	h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	// B never becomes ready (slow, on any machine); C arrives while B's
	// first worker waits.
	h.write(fmt.Sprintf(manifest, "serve", "B"))
	forkB := h.waitEvent("fork of B", func(e Event) bool { return e.Type == EventFork && e.Worker > 2 })
	h.write(fmt.Sprintf(manifest, "notify-serve:10ms", "C"))
	h.waitEvent("B's worker retired", func(e Event) bool { return e.Type == EventExit && e.Worker == forkB.Worker && e.Intended })
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	final := h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	for _, w := range final {
		if v := environ(t, w.PID)["VERSION"]; v != "C" {
			t.Errorf("worker %d runs VERSION %s, want C: no worker stays on an intermediate version", w.ID, v)
		}
	}
	for _, e := range h.drain() {
		if e.Type == EventReady && e.Worker == forkB.Worker {
			t.Errorf("B's worker, which never says READY=1, became ready")
		}
	}
}

// TestReloadOnEveryKindOfEdit drives a supervisor watching a manifest
// directory through the ways manifests get changed, each checked by the
// workers that result.
func TestReloadOnEveryKindOfEdit(t *testing.T) {
	app := func(name string, n int) string {
		return fmt.Sprintf("apps:\n  %s:\n    exec: %s\n    instances: %d\n    env: {PADDOCK_TEST_HELPER: serve}\n", name, self(t), n)
	}
	dir := t.TempDir()
	cm := filepath.Join(dir, "configmap")
	if err := os.Mkdir(cm, 0o755); err != nil {
		t.Fatal(err)
	}
	// A ConfigMap volume: web.yaml -> ..data/web.yaml, ..data -> ..v1.
	version := 0
	swap := func(content string) {
		version++
		v := fmt.Sprintf("..v%d", version)
		if err := os.Mkdir(filepath.Join(cm, v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cm, v, "web.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		old, _ := os.Readlink(filepath.Join(cm, "..data"))
		if err := os.Symlink(v, filepath.Join(cm, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(cm, "..data_tmp"), filepath.Join(cm, "..data")); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			os.RemoveAll(filepath.Join(cm, old))
		}
	}
	swap(app("web", 1))
	if err := os.Symlink("..data/web.yaml", filepath.Join(cm, "web.yaml")); err != nil {
		t.Fatal(err)
	}

	h := startWith(t, "", func(h *harness, o *Options) {
		o.Watch = []string{cm}
		o.ReloadDebounce = watch.DefaultDebounce
		o.Load = func() (*manifest.Set, error) { return manifest.Load([]string{cm}, manifest.CurrentHost()) }
	})
	// Watching begins with a reload: the ConfigMap's app starts.
	h.waitEvent("watching", isType(EventWatching))
	h.waitWorkers("web ×1", running("web", 1))

	count := func(app string, n int) func([]WorkerInfo) bool {
		return func(ws []WorkerInfo) bool { return len(pids(ws, app)) == n }
	}
	steps := []struct {
		name  string
		edit  func()
		check func([]WorkerInfo) bool
	}{
		{"ConfigMap ..data swap", func() { swap(app("web", 2)) }, count("web", 2)},
		{"file added", func() {
			if err := os.WriteFile(filepath.Join(cm, "api.yaml"), []byte(app("api", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(ws []WorkerInfo) bool { return count("web", 2)(ws) && count("api", 1)(ws) }},
		{"atomic rename", func() {
			tmp := filepath.Join(cm, ".api.yaml.tmp")
			if err := os.WriteFile(tmp, []byte(app("api", 3)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(cm, "api.yaml")); err != nil {
				t.Fatal(err)
			}
		}, count("api", 3)},
		{"truncate and write in two steps", func() {
			f, err := os.OpenFile(filepath.Join(cm, "api.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			content := app("api", 2)
			f.WriteString(content[:20])       // an invalid half-written file
			time.Sleep(20 * time.Millisecond) // a writer that pauses, well within the debounce
			f.WriteString(content[20:])
			f.Close()
		}, count("api", 2)},
		{"file removed", func() {
			if err := os.Remove(filepath.Join(cm, "api.yaml")); err != nil {
				t.Fatal(err)
			}
		}, func(ws []WorkerInfo) bool { return count("web", 2)(ws) && count("api", 0)(ws) && len(ws) == 2 }},
	}
	for _, step := range steps {
		step.edit()
		h.waitWorkers(step.name, step.check)
	}
	for _, e := range h.drain() {
		if e.Type == EventReloadFailed {
			t.Errorf("a half-written file was read: %s", describe([]Event{e}))
		}
	}
}
