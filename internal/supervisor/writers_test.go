package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

// watchedManifest is a supervisor that watches manifests (a file or a
// directory) and records, beside the harness's events, paddock's log, the
// number of apps in every set its loader read, and every reload result.
type watchedManifest struct {
	*harness
	logs    *testkit.Buffer
	mu      sync.Mutex
	loaded  []int
	results []string
}

// startWatchingLogged starts a supervisor over yaml (in DIR/paddock.yaml)
// that watches target(DIR) with debounce, and waits until it watches.
func startWatchingLogged(t *testing.T, yaml string, debounce time.Duration, target func(dir string) string) *watchedManifest {
	t.Helper()
	m := &watchedManifest{logs: &testkit.Buffer{}}
	var out io.Writer = m.logs
	if testing.Verbose() {
		out = io.MultiWriter(m.logs, os.Stderr)
	}
	m.harness = startWith(t, yaml, func(h *harness, o *Options) {
		path := target(h.dir)
		o.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Watch = []string{path}
		o.ReloadDebounce = debounce
		o.Load = func() (*manifest.Set, error) {
			set, err := manifest.Load([]string{path}, manifest.CurrentHost())
			if err == nil {
				m.mu.Lock()
				m.loaded = append(m.loaded, len(set.Apps))
				m.mu.Unlock()
			}
			return set, err
		}
		o.OnReload = func(r string) {
			m.mu.Lock()
			m.results = append(m.results, r)
			m.mu.Unlock()
		}
	})
	m.waitEvent("watching", isType(EventWatching))
	return m
}

// waitLog waits until paddock logged a line containing want, and returns it.
func (m *watchedManifest) waitLog(want string) string {
	m.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		for _, line := range strings.Split(m.logs.String(), "\n") {
			if strings.Contains(line, want) {
				return line
			}
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("paddock never logged %q; log:\n%s", want, m.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *watchedManifest) count(result string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.results {
		if r == result {
			n++
		}
	}
	return n
}

const webAndAPI = `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
  api:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve, VERSION: "%s"}
`

// writerDetected is what the watcher logs when it holds a change back
// because a writer has the file open.
const writerDetected = "a writer has a manifest file open"

// TestSlowWritersKeepWorkers rewrites a watched manifest in place with
// writers that truncate it and fill it more than the debounce later: a
// shell redirection, a Go program writing in two steps, curl -o, envsubst.
// The final content changes api only: web's worker keeps its pid, exactly
// one reload applies the new content, and no reload ever read an empty set.
func TestSlowWritersKeepWorkers(t *testing.T) {
	t.Parallel()
	const debounce = 100 * time.Millisecond
	writers := []struct {
		name string
		// write replaces path with content; it calls detected() while it
		// holds path open, half-written, and goes on once it returns.
		write func(t *testing.T, dir, path, content string, detected func())
	}{
		{"shell sleep", func(t *testing.T, dir, path, content string, detected func()) {
			// The very writer of the report: the file is empty for a
			// second, and nothing happens in between.
			writeFile(t, filepath.Join(dir, "next.yaml"), content)
			runWriter(t, dir, nil, "sh", "-c", `{ sleep 1; cat next.yaml; } > paddock.yaml`)
		}},
		{"shell", func(t *testing.T, dir, path, content string, detected func()) {
			writeFile(t, filepath.Join(dir, "next.yaml"), content)
			r, w := io.Pipe()
			done := startWriter(t, dir, r, "sh", "-c", `{ read line; cat next.yaml; } > paddock.yaml`)
			detected()
			fmt.Fprintln(w, "go on")
			w.Close()
			waitWriter(t, done)
		}},
		{"go two steps", func(t *testing.T, dir, path, content string, detected func()) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			half := len(content) / 2
			if _, err := f.WriteString(content[:half]); err != nil {
				t.Fatal(err)
			}
			detected()
			if _, err := f.WriteString(content[half:]); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"curl -o", func(t *testing.T, dir, path, content string, detected func()) {
			if _, err := exec.LookPath("curl"); err != nil {
				t.Skip("curl is not installed")
			}
			half := len(content) / 2
			sent := make(chan struct{})
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(len(content)))
				io.WriteString(w, content[:half])
				w.(http.Flusher).Flush()
				close(sent)
				<-release
				io.WriteString(w, content[half:])
			}))
			defer srv.Close()
			done := startWriter(t, dir, nil, "curl", "--silent", "--show-error", "--fail", "-o", "paddock.yaml", srv.URL)
			<-sent
			detected()
			close(release)
			waitWriter(t, done)
		}},
		{"envsubst", func(t *testing.T, dir, path, content string, detected func()) {
			if _, err := exec.LookPath("envsubst"); err != nil {
				t.Skip("envsubst is not installed")
			}
			tmpl := strings.Replace(content, `VERSION: "2"`, `VERSION: "$NEXT"`, 1)
			half := strings.Index(tmpl, "  api:")
			r, w := io.Pipe()
			done := startWriter(t, dir, r, "sh", "-c", `NEXT=2 envsubst > paddock.yaml`)
			io.WriteString(w, tmpl[:half])
			detected()
			io.WriteString(w, tmpl[half:])
			w.Close()
			waitWriter(t, done)
		}},
	}
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			t.Parallel()
			m := startWatchingLogged(t, fmt.Sprintf(webAndAPI, "1"), debounce, func(dir string) string {
				return filepath.Join(dir, "paddock.yaml")
			})
			before := m.waitWorkers("web and api", func(ws []WorkerInfo) bool {
				return len(pids(ws, "web")) == 1 && len(pids(ws, "api")) == 1
			})
			content := strings.NewReplacer("$SELF", self(t), "$DIR", m.dir).Replace(fmt.Sprintf(webAndAPI, "2"))
			path := filepath.Join(m.dir, "paddock.yaml")
			mark := len(m.drain())
			wr.write(t, m.dir, path, content, func() { m.waitLog(writerDetected) })

			reload := m.waitEvent("reload of api", isType(EventReload))
			if reload.App != "api" || reload.Detail != "api: updated (env.VERSION)" {
				t.Errorf("reload %q of %q, want api: updated (env.VERSION)", reload.Detail, reload.App)
			}
			m.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
			after := m.waitWorkers("web and api", func(ws []WorkerInfo) bool {
				return len(ws) == 2 && len(pids(ws, "web")) == 1 && len(pids(ws, "api")) == 1
			})
			if !slices.Equal(pids(after, "web"), pids(before, "web")) {
				t.Errorf("web's worker was replaced: pid %v, then %v", pids(before, "web"), pids(after, "web"))
			}
			if v := environ(t, pids(after, "api")[0])["VERSION"]; v != "2" {
				t.Errorf("api runs VERSION %s, want 2", v)
			}
			if n := m.count("applied"); n != 1 {
				t.Errorf("%d reloads applied something, want 1 (results %v)", n, m.results)
			}
			m.mu.Lock()
			if slices.Contains(m.loaded, 0) {
				t.Errorf("a reload read a set without apps (apps per load: %v)", m.loaded)
			}
			m.mu.Unlock()
			for _, e := range m.drain()[mark:] {
				switch {
				case e.Type == EventReloadFailed:
					t.Errorf("a half-written manifest was read: %s", describe([]Event{e}))
				case e.App == "web" && (e.Type == EventStopping || e.Type == EventFork):
					t.Errorf("web touched: %s", describe([]Event{e}))
				}
			}
		})
	}
}

// TestEmptiedFileSettles empties the manifest on purpose: its apps are
// removed, once the file stayed empty for the settle time, after a warning.
func TestEmptiedFileSettles(t *testing.T) {
	t.Parallel()
	m := startWatchingLogged(t, fmt.Sprintf(webAndAPI, "1"), 100*time.Millisecond, func(dir string) string {
		return filepath.Join(dir, "paddock.yaml")
	})
	m.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 })
	path := filepath.Join(m.dir, "paddock.yaml")
	writeFile(t, path, "")
	line := m.waitLog("declared api, web and now declares no app")
	want := path + " declared api, web and now declares no app: applied once it has been closed and unchanged for 1s"
	if !strings.Contains(line, want) || !strings.Contains(line, "level=WARN") {
		t.Errorf("log line %q, want a warning %q", line, want)
	}
	// Nothing was removed before the warning: the removal waits for it.
	// paddock's log holds its events too, in order: no reload or stop
	// comes before the warning (the events received so far could hold
	// the removal already, had this test been held up for the settle
	// time).
	for _, l := range strings.Split(m.logs.String(), "\n") {
		if strings.Contains(l, "now declares no app") {
			break
		}
		if strings.Contains(l, " msg=reload ") || strings.Contains(l, " msg=stopping ") {
			t.Fatalf("applied before the settle time: %s", l)
		}
	}
	for _, app := range []string{"api", "web"} {
		e := m.waitEvent("removal of "+app, func(e Event) bool { return e.Type == EventReload && e.App == app })
		if e.Detail != app+": removed 1" {
			t.Errorf("reload %q, want %q", e.Detail, app+": removed 1")
		}
	}
	m.waitWorkers("no worker", func(ws []WorkerInfo) bool { return len(ws) == 0 })
}

// TestDeletedFileSettles removes one file of a watched manifest directory
// on purpose (git rm): its app is removed after the settle time; the other
// file's worker is left alone.
func TestDeletedFileSettles(t *testing.T) {
	t.Parallel()
	m := startWatchingLogged(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
`, 100*time.Millisecond, func(dir string) string { return dir })
	api := filepath.Join(m.dir, "api.yaml")
	writeFile(t, api, fmt.Sprintf("apps:\n  api:\n    exec: %s\n    env: {PADDOCK_TEST_HELPER: serve}\n", self(t)))
	before := m.waitWorkers("web and api", func(ws []WorkerInfo) bool {
		return len(pids(ws, "web")) == 1 && len(pids(ws, "api")) == 1
	})
	if err := os.Remove(api); err != nil {
		t.Fatal(err)
	}
	line := m.waitLog("declared api and is gone")
	if want := api + " declared api and is gone: applied once it has stayed gone for 1s"; !strings.Contains(line, want) {
		t.Errorf("log line %q, want %q", line, want)
	}
	m.waitEvent("removal of api", func(e Event) bool { return e.Type == EventReload && e.Detail == "api: removed 1" })
	after := m.waitWorkers("web alone", running("web", 1))
	if !slices.Equal(pids(after, "web"), pids(before, "web")) {
		t.Errorf("web's worker was replaced: %v, then %v", pids(before, "web"), pids(after, "web"))
	}
}

// TestReloadWhileWriterHoldsFile asks for a reload (as `paddock reload` and
// SIGHUP do) while a writer has the manifest open, half-written: nothing is
// applied, and the reload says why; once the writer is done, a reload
// applies the whole file.
func TestReloadWhileWriterHoldsFile(t *testing.T) {
	t.Parallel()
	h := startWith(t, fmt.Sprintf(webAndAPI, "1"), func(h *harness, o *Options) {
		path := filepath.Join(h.dir, "paddock.yaml")
		o.Load = func() (*manifest.Set, error) { return manifest.Load([]string{path}, manifest.CurrentHost()) }
	})
	before := h.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 })
	path := filepath.Join(h.dir, "paddock.yaml")
	// No process a parallel test forks may inherit the writer's
	// descriptor and hold it past Close (nothing here forks meanwhile).
	release := sync.OnceFunc(testkit.HoldForks())
	defer release()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := strings.NewReplacer("$SELF", self(t)).Replace(fmt.Sprintf(webAndAPI, "2"))
	if _, err := f.WriteString(content[:len(content)/2]); err != nil {
		t.Fatal(err)
	}
	_, err = h.sup.Reload(context.Background())
	if !manifest.IsOpenForWriting(err) || !strings.Contains(err.Error(), "a writer still has "+path+" open") {
		t.Fatalf("reload while a writer has the file open: %v", err)
	}
	failed := h.waitEvent("reload-failed", isType(EventReloadFailed))
	if want := "a writer still has " + path + " open; not applied; the running set is kept"; failed.Detail != want {
		t.Errorf("reload-failed %q, want %q", failed.Detail, want)
	}
	if now := h.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 }); !slices.Equal(allPIDs(now), allPIDs(before)) {
		t.Errorf("workers changed: %v, then %v", before, now)
	}
	if _, err := f.WriteString(content[len(content)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	release()
	changes, err := h.sup.Reload(context.Background())
	if err != nil || len(changes) != 1 || changes[0].String() != "api: updated (env.VERSION)" {
		t.Fatalf("reload once the writer closed the file: %v %v", changes, err)
	}
}

// TestShutdownDuringBlockedLoad stops the supervisor while a load blocks (a
// filesystem that does not answer): Run returns all the same, a reload
// that gives up returns, and the blocked load, once it returns, is never
// applied after a newer one.
func TestShutdownDuringBlockedLoad(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		calls   int
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	// loader returns a loader whose first load hangs until release is
	// closed, then returns an older version than the loads after it.
	// (The sets are read from dir, where the running set comes from: the
	// manifest's directory is the workers' default cwd.)
	loader := func(dir string) func() (*manifest.Set, error) {
		older := load(t, dir, fmt.Sprintf(webAndAPI, "old"))
		newer := load(t, dir, fmt.Sprintf(webAndAPI, "2"))
		entered, release := entered, release
		return func() (*manifest.Set, error) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n == 1 {
				close(entered)
				<-release
				return older, nil
			}
			return newer, nil
		}
	}
	h := startWith(t, fmt.Sprintf(webAndAPI, "1"), func(h *harness, o *Options) { o.Load = loader(h.dir) })
	h.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 })
	h.sup.RequestReload()
	<-entered
	// A reload that gives up returns at once, the load still blocked.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.sup.Reload(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("reload with a cancelled context during a blocked load: %v", err)
	}
	// Shutdown is not held up by the blocked load.
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		close(release)
	case <-time.After(patience):
		close(release) // lets Run finish, for Cleanup
		t.Fatal("Run did not return while a manifest load was blocked")
	}

	// Ordering: a second supervisor whose first load is given up on
	// applies only the newer load.
	mu.Lock()
	calls = 0
	mu.Unlock()
	entered, release = make(chan struct{}), make(chan struct{})
	h = startWith(t, fmt.Sprintf(webAndAPI, "1"), func(h *harness, o *Options) { o.Load = loader(h.dir) })
	h.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 })
	ctx, cancel = context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := h.sup.Reload(ctx)
		gaveUp <- err
	}()
	<-entered
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("reload given up: %v", err)
	}
	newer := make(chan error, 1)
	go func() {
		_, err := h.sup.Reload(context.Background())
		newer <- err
	}()
	close(release)
	if err := <-newer; err != nil {
		t.Fatal(err)
	}
	reload := h.waitEvent("reload", isType(EventReload))
	if reload.App != "api" {
		t.Errorf("reload of %s", reload.App)
	}
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	ws := h.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 })
	if v := environ(t, pids(ws, "api")[0])["VERSION"]; v != "2" {
		t.Errorf("api runs VERSION %q, want 2: the older load was applied", v)
	}
	for _, e := range h.drain() {
		if e.Type == EventReload && e != reload {
			t.Errorf("another reload: %s", describe([]Event{e}))
		}
	}
}

// allPIDs returns the pids of every live worker in ws.
func allPIDs(ws []WorkerInfo) []int {
	var out []int
	for _, w := range ws {
		if w.PID != 0 {
			out = append(out, w.PID)
		}
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := testkit.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startWriter starts a command in dir with stdin; the returned channel
// yields its result.
func startWriter(t *testing.T, dir string, stdin io.Reader, name string, args ...string) <-chan error {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdin, cmd.Stderr = dir, stdin, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done
}

func waitWriter(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		// The supervisors of these tests reap their own workers alone
		// (procs.Reaper.OwnChildrenOnly): the writer's status is its own.
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the writer did not finish")
	}
}

func runWriter(t *testing.T, dir string, stdin io.Reader, name string, args ...string) {
	t.Helper()
	waitWriter(t, startWriter(t, dir, stdin, name, args...))
}
