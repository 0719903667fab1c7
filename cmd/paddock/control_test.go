package main

// Tests of the control socket and the client commands, through the real
// socket, against a real `paddock run` with real workers.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// socketPath returns a fresh control socket path for one test.
func socketPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "control.sock")
}

// startWithSocket runs `paddock run --log-format json ARGS...` with its
// control socket at sock.
func startWithSocket(t *testing.T, sock string, args ...string) *running {
	t.Helper()
	cmd := exec.Command(paddockBin, append([]string{"run", "--log-format", "json", "--socket", sock}, args...)...)
	r := startPaddockCmd(t, cmd)
	testkit.WaitFor(t, "the control socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// cli runs a client command against sock and returns its stdout, stderr and
// exit code.
func cli(t *testing.T, sock string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(paddockBin, args...)
	cmd.Env = append(os.Environ(), control.SocketEnv+"="+sock)
	return runCommand(t, cmd)
}

// mustCLI runs a client command that must exit 0.
func mustCLI(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, sock, args...)
	if code != 0 {
		t.Fatalf("paddock %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// apiClients holds a control client per socket path, so that a test
// polling the status reuses one connection.
var apiClients sync.Map

// statusOf returns the status of the supervisor on sock, from the control
// API in this process: the tests poll it, and a `paddock status --json`
// process per poll would keep a CPU busy (TestStatusScaleReloadDiff checks
// that the command prints the same).
func statusOf(t *testing.T, sock string) control.StatusResponse {
	t.Helper()
	c, _ := apiClients.LoadOrStore(sock, control.NewClient(sock))
	st, err := c.(*control.Client).Status(t.Context())
	if err != nil {
		t.Fatalf("status of the supervisor on %s: %v", sock, err)
	}
	return *st
}

// statusOfCLI is statusOf through `paddock status --json`.
func statusOfCLI(t *testing.T, sock string) control.StatusResponse {
	t.Helper()
	var st control.StatusResponse
	if err := json.Unmarshal([]byte(mustCLI(t, sock, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// liveWorkers returns the running workers of app, by id, without their
// resource use (which changes from one reading to the next), so that two
// answers compare.
func liveWorkers(st control.StatusResponse, app string) map[int]control.Worker {
	out := map[int]control.Worker{}
	for _, w := range st.Workers {
		if w.App == app && w.State == "running" && w.PID != 0 {
			w.RSSBytes, w.CPUPercent, w.CPUSeconds, w.Processes = nil, nil, nil, nil
			out[w.ID] = w
		}
	}
	return out
}

func appOf(t *testing.T, st control.StatusResponse, name string) control.App {
	t.Helper()
	for _, a := range st.Apps {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no app %s in status", name)
	return control.App{}
}

func waitWorkers(t *testing.T, sock, app string, n int) map[int]control.Worker {
	t.Helper()
	var ws map[int]control.Worker
	testkit.WaitFor(t, fmt.Sprintf("%d running workers of %s", n, app), func() bool {
		st := statusOf(t, sock)
		ws = liveWorkers(st, app)
		stopping := 0
		for _, w := range st.Workers {
			if w.App == app && w.State == "stopping" {
				stopping++
			}
		}
		return len(ws) == n && stopping == 0
	})
	return ws
}

const sleepers = `
apps:
  web:
    exec: /bin/sleep
    args: [1000]
    instances: %d
    killTimeout: 2s
`

func TestStatusScaleReloadDiff(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 2))
	startWithSocket(t, sock, "--watch=false", manifest)
	waitWorkers(t, sock, "web", 2)

	checkStatusTable(t, sock)

	// diff of the running manifests: nothing.
	if out, _, code := cli(t, sock, "diff", manifest); code != 0 || !strings.Contains(out, "no change") {
		t.Errorf("diff of the running manifest: exit %d, %q", code, out)
	}

	// scale: a runtime override, shown by status.
	out := mustCLI(t, sock, "scale", "web", "4")
	if !strings.Contains(out, "2 → 4") {
		t.Errorf("scale output: %q", out)
	}
	waitWorkers(t, sock, "web", 4)
	app := appOf(t, statusOf(t, sock), "web")
	if app.Instances != 4 || app.ManifestInstances != 2 || !app.Override {
		t.Errorf("after scale: %+v", app)
	}
	if !strings.Contains(mustCLI(t, sock, "status"), "4 (scaled; manifest 2)") {
		t.Error("status does not show the override")
	}
	// The unchanged manifest still diffs to nothing: the override stands.
	if out, _, code := cli(t, sock, "diff"); code != 0 {
		t.Errorf("diff after scale: exit %d, %q", code, out)
	}

	// A manifest change that leaves instances alone keeps the override.
	testkit.WriteFile(manifest, []byte(strings.Replace(fmt.Sprintf(sleepers, 2), "[1000]", "[1001]", 1)), 0o644)
	out, _, code := cli(t, sock, "diff", manifest)
	if code != 1 || !strings.Contains(out, "~ web: updated (rolling update) for args") || strings.Contains(out, "scaled") {
		t.Errorf("diff of an args change: exit %d, %q", code, out)
	}
	out = mustCLI(t, sock, "reload")
	if !strings.Contains(out, "web: updated (rolling update)") {
		t.Errorf("reload output: %q", out)
	}
	ws := waitWorkers(t, sock, "web", 4)
	for _, w := range ws {
		if w.Generation != appOf(t, statusOf(t, sock), "web").Generation {
			t.Errorf("worker %d of an old generation after the rollout", w.ID)
		}
	}

	// A change of the manifest's instances drops the override.
	testkit.WriteFile(manifest, []byte(strings.Replace(fmt.Sprintf(sleepers, 1), "[1000]", "[1001]", 1)), 0o644)
	out, _, code = cli(t, sock, "diff", "--json", manifest)
	var diff control.ChangesResponse
	if err := json.Unmarshal([]byte(out), &diff); err != nil || code != 1 || len(diff.Changes) != 1 ||
		diff.Changes[0].Kind != "scaled" || diff.Changes[0].From != 4 || diff.Changes[0].To != 1 {
		t.Errorf("diff --json of instances 2→1 with an override of 4: exit %d, %s", code, out)
	}
	mustCLI(t, sock, "reload")
	waitWorkers(t, sock, "web", 1)
	if app := appOf(t, statusOf(t, sock), "web"); app.Override || app.Instances != 1 {
		t.Errorf("after the manifest's instances changed: %+v", app)
	}

	checkRejectedCommands(t, sock, manifest)
}

// checkRejectedCommands checks, against the supervisor on sock running
// manifest's app web, that an invalid manifest is reported by diff (exit
// 2) and reload (exit 1, running set kept), a missing one by diff, and
// usage errors and an unknown app are refused.
func checkRejectedCommands(t *testing.T, sock, manifest string) {
	t.Helper()
	// Invalid manifests: diff exits 2, reload 1 with file:line:col, and
	// nothing running changes.
	before := liveWorkers(statusOf(t, sock), "web")
	testkit.WriteFile(manifest, []byte("apps:\n  web:\n    exec: /bin/sleep\n    instances: lots\n"), 0o644)
	_, errOut, code := cli(t, sock, "diff", manifest)
	if code != 2 || !strings.Contains(errOut, manifest+":4:16: apps.web.instances") {
		t.Errorf("diff of an invalid manifest: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, sock, "reload")
	if code != 1 || !strings.Contains(errOut, manifest+":4:16: apps.web.instances") || !strings.Contains(errOut, "running set is kept") {
		t.Errorf("reload of an invalid manifest: exit %d, %q", code, errOut)
	}
	after := liveWorkers(statusOf(t, sock), "web")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("workers changed after a rejected reload: %v → %v", before, after)
	}
	// A missing path is an error too.
	if _, _, code := cli(t, sock, "diff", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 {
		t.Errorf("diff of a missing path: exit %d", code)
	}
	// Usage errors.
	for _, args := range [][]string{{"scale", "web"}, {"scale", "web", "-1"}, {"send", "web", "{bad"}, {"signal", "web", "NOPE"}} {
		if _, _, code := cli(t, sock, args...); code != 2 {
			t.Errorf("paddock %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	if _, errOut, code := cli(t, sock, "scale", "nope", "3"); code != 1 || !strings.Contains(errOut, "no such app") {
		t.Errorf("scale of an unknown app: exit %d, %q", code, errOut)
	}
}

// checkStatusTable checks the status table of the supervisor on sock, which
// runs two ready workers of app web, and that status --json shows what
// the API does.
func checkStatusTable(t *testing.T, sock string) {
	t.Helper()
	// The table names every column and worker.
	table := mustCLI(t, sock, "status")
	for _, col := range []string{"APP", "WORKER", "PID", "STATE", "READY", "UPTIME", "RESTARTS", "LISTEN", "GENERATION", "DESIRED", "ROLLOUT", "CPU", "MEM"} {
		if !strings.Contains(table, col) {
			t.Errorf("status lacks column %s:\n%s", col, table)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^web\s+\d+\s+\d+\s+running\s+yes`).FindAllString(table, -1)); n != 2 {
		t.Errorf("status shows %d running ready web workers, want 2:\n%s", n, table)
	}
	// Their CPU and memory, read from /proc, and the app's sum.
	if n := len(regexp.MustCompile(`(?m)^web\s+\d+\s+\d+\s+running\s+yes\s+\S+\s+\d+\s+\d+(\.\d)?%\s+\d+(\.\d)?(Ki|Mi)\s`).FindAllString(table, -1)); n != 2 {
		t.Errorf("status shows the CPU and memory of %d web workers, want 2:\n%s", n, table)
	}
	st := statusOfCLI(t, sock)
	var sum int64
	for _, w := range st.Workers {
		if w.PID != 0 && (w.RSSBytes == nil || *w.RSSBytes <= 0 || w.CPUPercent == nil || w.Processes == nil || *w.Processes != 1) {
			t.Errorf("status --json: worker %d without its resource use: %+v", w.ID, w)
		} else if w.PID != 0 {
			sum += *w.RSSBytes
		}
	}
	if a := appOf(t, st, "web"); a.RSSBytes == nil || *a.RSSBytes != sum || a.CPUPercent == nil {
		t.Errorf("status --json: app web's memory is not its workers' sum %d: %+v", sum, a)
	}
	if cli, api := liveWorkers(statusOfCLI(t, sock), "web"), liveWorkers(statusOf(t, sock), "web"); fmt.Sprint(cli) != fmt.Sprint(api) {
		t.Errorf("status --json shows %v, the API %v", cli, api)
	}
}
