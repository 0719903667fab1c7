package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// rollbackApp is an app that rolls back stalled rolling updates; %s is
// the shell script of its release.
const rollbackApp = `
apps:
  web:
    exec: /bin/sh
    args: ["-c", %q]
    instances: 2
    minReadyTime: 0s
    backoff: {initial: 1h, max: 1h}
    rollout: {onStall: rollback}
`

// TestRollbackShownByStatusAndDiff: a release that crashes, rolled back by
// rollout.onStall: rollback, is shown by `paddock status` (table and JSON)
// and `paddock diff` as a running app that differs from its manifest; a
// reload of the same manifest keeps the rollback.
func TestRollbackShownByStatusAndDiff(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	path := writeManifest(t, fmt.Sprintf(rollbackApp, "exec sleep 600"))
	r := startWithSocket(t, sock, path)
	defer r.cmd.Process.Kill()
	ws := waitWorkers(t, sock, "web", 2)
	good := appOf(t, statusOf(t, sock), "web").Generation
	// minReadyTime 0s: the workers are available as soon as they run; a
	// release that exits at once, within minReadyTime 1h, stalls.
	bad := strings.Replace(fmt.Sprintf(rollbackApp, "echo broken >&2; exit 4"), "minReadyTime: 0s", "minReadyTime: 1h", 1)
	if err := testkit.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, sock, "reload")
	var app control.App
	testkit.WaitFor(t, "the rollback to complete", func() bool {
		app = appOf(t, statusOf(t, sock), "web")
		return app.RolledBack != nil && app.Rollout == nil
	})
	if app.Generation != good || app.RolledBack.To != good || app.RolledBack.From == good ||
		!strings.Contains(app.RolledBack.Reason, "exited within minReadyTime") {
		t.Errorf("status --json after the rollback: generation %s, rolled back %+v; want to %s", app.Generation, app.RolledBack, good)
	}
	for _, w := range ws {
		if now := liveWorkers(statusOf(t, sock), "web"); now[w.ID].PID != w.PID {
			t.Errorf("worker %d (pid %d) did not stay through the stall and the rollback: %+v", w.ID, w.PID, now)
		}
	}
	table := mustCLI(t, sock, "status")
	for _, want := range []string{
		good + " (rolled back from " + app.RolledBack.From + ")",
		"\n  rolled back from generation " + app.RolledBack.From + " to " + good + ": web/",
		"the manifest still says " + app.RolledBack.From,
	} {
		if !strings.Contains(table, want) {
			t.Errorf("status lacks %q:\n%s", want, table)
		}
	}
	out, errOut, code := cli(t, sock, "diff")
	if code != 1 || !regexp.MustCompile(`(?m)^! web: runs generation `+good+`, rolled back from the manifest's `+app.RolledBack.From).MatchString(out) {
		t.Errorf("diff of a rolled-back app: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, _, code = cli(t, sock, "diff", "--json")
	var diff control.ChangesResponse
	if err := json.Unmarshal([]byte(out), &diff); err != nil || code != 1 || len(diff.Changes) != 0 ||
		len(diff.RolledBack) != 1 || diff.RolledBack[0].App != "web" || diff.RolledBack[0].To != good {
		t.Errorf("diff --json of a rolled-back app: exit %d, %s", code, out)
	}
	// The same manifest again: nothing changes, the rollback stays.
	if out := mustCLI(t, sock, "reload"); !strings.Contains(out, "no change") {
		t.Errorf("reload of the same manifest: %q", out)
	}
	if app := appOf(t, statusOf(t, sock), "web"); app.RolledBack == nil || app.Generation != good {
		t.Errorf("after a reload of the same manifest: %+v", app)
	}
}
