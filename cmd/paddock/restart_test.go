package main

import (
	"strings"
	"testing"
)

// TestRestartWaitCrashLoop: `paddock restart --wait` of an app whose
// workers crash right after they start ends with exit 1 and says the
// rollout stalled, instead of waiting for ever.
func TestRestartWaitCrashLoop(t *testing.T) {
	sock := socketPath(t)
	r := startWithSocket(t, sock, writeManifest(t, `
apps:
  crash:
    exec: /bin/sh
    args: ["-c", "exit 3"]
    instances: 2
`))
	defer r.cmd.Process.Kill()
	out, errOut, code := cli(t, sock, "restart", "--wait", "crash")
	if code != 1 || !strings.Contains(out, "stalled: crash/") || !strings.Contains(out, "no old worker is left to serve") {
		t.Fatalf("restart --wait of a crash-looping app: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	st := statusOf(t, sock)
	if len(st.Apps) != 1 || st.Apps[0].Rollout == nil || st.Apps[0].Rollout.Stalled == "" {
		t.Errorf("status does not show the stalled rollout: %+v", st.Apps)
	}
}
