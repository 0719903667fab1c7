package main

import (
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestRestartWaitCrashLoop: `paddock restart --wait` of an app whose
// workers crash right after they start ends with exit 1 and says the
// rollout stalled, instead of waiting for ever.
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
    args: ["-c", "exit 3"]
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
	if code != 1 || !strings.Contains(out, "stalled: crash/") || !strings.Contains(out, "no old worker is left to serve") {
		t.Fatalf("restart --wait of a crash-looping app: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	st := statusOf(t, sock)
	if len(st.Apps) != 1 || st.Apps[0].Rollout == nil || st.Apps[0].Rollout.Stalled == "" {
		t.Errorf("status does not show the stalled rollout: %+v", st.Apps)
	}
}
