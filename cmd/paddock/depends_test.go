package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestValidateDependsOn: `paddock validate` of a directory whose files
// depend on each other's apps reports a cycle through both files, named
// whole, and an unknown name with a suggestion, each at the list item's
// file:line:col, and exits 1.
func TestValidateDependsOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := testkit.WriteFile(a, []byte("apps:\n  web:\n    exec: /bin/sleep\n    dependsOn: [api, queue]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := testkit.WriteFile(b, []byte("apps:\n  api:\n    exec: /bin/sleep\n    dependsOn:\n      - web\n  que:\n    exec: /bin/sleep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCommand(t, exec.Command(paddockBin, "validate", dir))
	want := a + `:4:17: apps.web.dependsOn[0]: dependency cycle: web -> api -> web` + "\n" +
		a + `:4:22: apps.web.dependsOn[1]: unknown app "queue" (did you mean "que"?)` + "\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, stdout, stderr, want)
	}
}

// TestStatusShowsWaiting: a running paddock whose app web depends on db,
// which never becomes ready, shows in `paddock status` (table and JSON)
// why web waits, and starts no worker of web; `paddock diff` of a change
// of dependsOn alone says the workers are kept.
func TestStatusShowsWaiting(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	const manifestFmt = `
apps:
  db:
    exec: /bin/sleep
    args: [3600]
    cwd: /
    readiness: notify
    readyTimeout: 1h
  web:
    exec: /bin/sleep
    args: [3600]
    cwd: /
    dependsOn: [%s]
`
	manifest := writeManifest(t, strings.Replace(manifestFmt, "%s", "db", 1))
	startWithSocket(t, sock, manifest)
	const why = "waiting for db: 0/1 available"
	testkit.WaitFor(t, "web waiting for db", func() bool {
		st := statusOf(t, sock)
		return appOf(t, st, "web").Waiting == why && len(liveWorkers(st, "db")) == 1
	})
	if ws := liveWorkers(statusOf(t, sock), "web"); len(ws) != 0 {
		t.Errorf("web has workers %v while db is not ready", ws)
	}
	table := mustCLI(t, sock, "status")
	if !regexp.MustCompile(`(?m)^web\s.*\s`+regexp.QuoteMeta(why)+`$`).MatchString(table) || !strings.Contains(table, "WAITING") {
		t.Errorf("status table does not show %q in web's row:\n%s", why, table)
	}
	if got := appOf(t, statusOfCLI(t, sock), "web").Waiting; got != why {
		t.Errorf("status --json: web waiting %q, want %q", got, why)
	}

	other := filepath.Join(t.TempDir(), "paddock.yaml")
	if err := os.WriteFile(other, []byte(strings.Replace(manifestFmt, "%s", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, sock, "diff", other)
	if code != 1 || out != "~ web: reconfigured (dependsOn), workers kept\n" {
		t.Errorf("diff of a dependsOn change: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
