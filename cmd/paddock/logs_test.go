package main

import (
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestLogsOfAnUnknownOrNotSilentApp: `paddock logs APP` of an app the
// supervisor does not run exits 1 naming it; the lines of an app's workers
// are shown whether the app is silent (its lines are prefixed on paddock's
// stdout) or not (they are copied as written).
func TestLogsOfAnUnknownOrNotSilentApp(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	r := startWithSocket(t, sock, writeManifest(t, `
apps:
  loud:
    exec: /bin/sh
    args: ["-c", "echo loud hello; exec sleep 600"]
  quiet:
    exec: /bin/sh
    args: ["-c", "echo hello; exec sleep 600"]
    silent: true
`))
	defer r.cmd.Process.Kill()
	out, errOut, code := cli(t, sock, "logs", "nosuch")
	if want := "nosuch: no such app in the running manifests"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("paddock logs nosuch: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
	testkit.WaitFor(t, "the silent worker's line", func() bool {
		out, _, code := cli(t, sock, "logs", "quiet")
		return code == 0 && strings.Contains(out, "| hello")
	})
	testkit.WaitFor(t, "the line of the worker that is not silent", func() bool {
		out, _, code := cli(t, sock, "logs", "loud")
		return code == 0 && strings.Contains(out, "| loud hello")
	})
}
