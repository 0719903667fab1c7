package supervisor

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

// TestReloadSaysWhenValidAgain: after a rejected manifest is fixed, the log
// says the manifests are valid again and what was applied, or that
// nothing changed from the running set.
func TestReloadSaysWhenValidAgain(t *testing.T) {
	t.Parallel()
	log := &testkit.Buffer{}
	const valid = "apps:\n  web:\n    exec: $SELF\n    env: {PADDOCK_TEST_HELPER: serve}\n    instances: %s\n"
	h := startWith(t, strings.Replace(valid, "%s", "1", 1), func(h *harness, o *Options) {
		path := filepath.Join(h.dir, "paddock.yaml")
		o.Logger = slog.New(slog.NewTextHandler(log, nil))
		o.Load = func() (*manifest.Set, error) { return manifest.Load([]string{path}, manifest.CurrentHost()) }
	})
	h.waitWorkers("1 worker", running("web", 1))
	reload := func(yaml string) {
		t.Helper()
		h.write(yaml)
		_, _ = h.sup.Reload(context.Background())
	}
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for !strings.Contains(log.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the log never said %q:\n%s", want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	reload(strings.Replace(valid, "%s", "-1", 1))
	h.waitEvent("reload-failed", isType(EventReloadFailed))
	reload(strings.Replace(valid, "%s", "1", 1))
	waitLog(`msg="the manifests are valid again" applied="nothing changed from the running set"`)
	reload(strings.Replace(valid, "%s", "-1", 1))
	reload(strings.Replace(valid, "%s", "2", 1))
	waitLog(`msg="the manifests are valid again" applied="web: scaled 1→2"`)
	if n := strings.Count(log.String(), "valid again"); n != 2 {
		t.Errorf("said valid again %d times, want 2 (once per fix):\n%s", n, log.String())
	}
}
