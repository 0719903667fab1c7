package main

import (
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestLogsOfAnUnknownOrNotSilentApp: `paddock logs APP` of an app the
// supervisor does not run exits 1 naming it; of an app that is not silent
// it exits 1 and says where that output goes.
func TestLogsOfAnUnknownOrNotSilentApp(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	r := startWithSocket(t, sock, writeManifest(t, `
apps:
  loud:
    exec: /bin/sleep
    args: [600]
  quiet:
    exec: /bin/sh
    args: ["-c", "echo hello; exec sleep 600"]
    silent: true
`))
	defer r.cmd.Process.Kill()
	for _, tc := range []struct {
		app      string
		wantCode int
		want     string
	}{
		{"nosuch", 1, "nosuch: no such app in the running manifests"},
		{"loud", 1, "loud: its workers are not silent: they write straight to paddock's own stdout and stderr"},
	} {
		out, errOut, code := cli(t, sock, "logs", tc.app)
		if code != tc.wantCode || !strings.Contains(errOut, tc.want) {
			t.Errorf("paddock logs %s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.app, code, out, errOut, tc.wantCode, tc.want)
		}
	}
	testkit.WaitFor(t, "the silent worker's line", func() bool {
		out, _, code := cli(t, sock, "logs", "quiet")
		return code == 0 && strings.Contains(out, "| hello")
	})
}
