package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"

	"github.com/paddock-sh/paddock/internal/testkit"
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
	t.Parallel()
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

func TestRapidEditsConverge(t *testing.T) {
	t.Parallel()
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

// TestReloadOnEveryKindOfEdit drives a supervisor watching a manifest
// directory through the ways manifests get changed, each checked by the
// workers that result.
func TestReloadOnEveryKindOfEdit(t *testing.T) {
	t.Parallel()
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
		if err := testkit.WriteFile(filepath.Join(cm, v, "web.yaml"), []byte(content), 0o644); err != nil {
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
			if err := testkit.WriteFile(filepath.Join(cm, "api.yaml"), []byte(app("api", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(ws []WorkerInfo) bool { return count("web", 2)(ws) && count("api", 1)(ws) }},
		{"atomic rename", func() {
			tmp := filepath.Join(cm, ".api.yaml.tmp")
			if err := testkit.WriteFile(tmp, []byte(app("api", 3)), 0o644); err != nil {
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
