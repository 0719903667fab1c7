package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestRestartWaitCrashLoop: `paddock restart --wait` of an app whose
// workers crash right after they start ends with exit 1 and says the
// rollout stalled, why, how the failing worker exited and what it wrote
// last, instead of waiting for ever; `paddock status` (table and JSON)
// shows the same.
//
// Whatever the machine's speed: a crash always comes within minReadyTime
// (1h), and the restart begins once every old worker crashed and waits
// out its backoff (1h), so that no old worker is left to serve.
func TestRestartWaitCrashLoop(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	r := startWithSocket(t, sock, writeManifest(t, `
apps:
  crash:
    exec: /bin/sh
    args: ["-c", "echo starting; echo boom from $PADDOCK_WORKER_ID >&2; exit 3"]
    instances: 2
    minReadyTime: 1h
    backoff: {initial: 1h, max: 1h}
`))
	defer r.cmd.Process.Kill()
	testkit.WaitFor(t, "both workers to crash", func() bool {
		st := statusOf(t, sock)
		crashed := 0
		for _, w := range st.Workers {
			if w.PID == 0 {
				crashed++
			}
		}
		return len(st.Workers) == 2 && crashed == 2
	})
	out, errOut, code := cli(t, sock, "restart", "--wait", "crash")
	exited := regexp.MustCompile(`last exit: crash/\d+ \(pid \d+\) exited with code 3 after`)
	if code != 1 || !strings.Contains(out, "stalled: crash/") || !strings.Contains(out, "no old worker is left to serve") ||
		!exited.MatchString(out) || !regexp.MustCompile(`\n    \| boom from \d+\n`).MatchString(out) {
		t.Fatalf("restart --wait of a crash-looping app: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	st := statusOfCLI(t, sock)
	if len(st.Apps) != 1 || st.Apps[0].Rollout == nil || st.Apps[0].Rollout.Stalled == "" {
		t.Fatalf("status does not show the stalled rollout: %+v", st.Apps)
	}
	ro := st.Apps[0].Rollout
	if ro.LastExit == nil || ro.LastExit.Code != 3 || ro.LastExit.Generation != st.Apps[0].Generation ||
		!slices.ContainsFunc(ro.LastExit.Lines, func(l string) bool { return strings.HasPrefix(l, "boom from") }) {
		t.Errorf("status --json of the stalled rollout: %+v, last exit %+v", ro, ro.LastExit)
	}
	if ex := st.Apps[0].LastExit; ex == nil || ex.Code != 3 || !slices.Contains(ex.Lines, "starting") {
		t.Errorf("status --json: the app's last exit %+v", ex)
	}
	table := mustCLI(t, sock, "status")
	if !regexp.MustCompile(`(?m)^  rollout stalled: crash/\d+ `).MatchString(table) || !exited.MatchString(table) ||
		!strings.Contains(table, "| starting\n") {
		t.Errorf("status table of the stalled rollout:\n%s", table)
	}
}
