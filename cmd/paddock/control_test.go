package main

// Tests of the control socket and the client commands, through the real
// socket, against a real `paddock run` with real workers.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/notify"
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

// liveWorkers returns the running workers of app, by id.
func liveWorkers(st control.StatusResponse, app string) map[int]control.Worker {
	out := map[int]control.Worker{}
	for _, w := range st.Workers {
		if w.App == app && w.State == "running" && w.PID != 0 {
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

func TestSocketIsPrivate(t *testing.T) {
	t.Parallel()
	testkit.NeedRoot(t, "to run a client as the user nobody")
	dir := t.TempDir()
	// nobody must reach the socket's directory and the paddock binary for
	// the test to mean anything.
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(paddockBin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "control.sock")
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	old := syscall.Umask(0) // the most permissive umask: the socket must still be 0600
	r := startWithSocket(t, sock, manifest)
	syscall.Umask(old)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	if _, _, code := cli(t, sock, "status"); code != 0 {
		t.Fatalf("status as the supervisor's own user: exit %d", code)
	}

	asNobody := func() (string, int) {
		cmd := exec.Command(paddockBin, "status", "--socket", sock)
		testkit.AsUser(cmd, testkit.Nobody)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("status as nobody: %v, want exit 1", err)
		}
		return stderr.String(), ee.ExitCode()
	}
	// The file mode keeps nobody out.
	if msg, code := asNobody(); code != 1 || !strings.Contains(msg, "permission denied") {
		t.Errorf("nobody through a 0600 socket: exit %d, %q", code, msg)
	}
	// Even when the mode lets it in, SO_PEERCRED does not.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	msg, code := asNobody()
	if code != 1 || !strings.Contains(msg, "closed the connection without answering (it serves only its own user and root)") {
		t.Errorf("nobody through a 0666 socket: exit %d, %q", code, msg)
	}
	testkit.WaitFor(t, "the refusal in the log", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.logs {
			if m["msg"] == "control connection refused: another user" && m["uid"] == float64(65534) {
				return true
			}
		}
		return false
	})
}

func TestStaleSocketReplacedLiveSocketRefused(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	// A socket left behind by a supervisor that died: bound, then closed
	// without being removed.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	r := startWithSocket(t, sock, manifest)
	waitWorkers(t, sock, "web", 1)
	r.workerPIDs(1) // the log is read up to the fork, which comes after the socket's record
	if !r.logged("replaced a stale control socket left by a supervisor that is gone") {
		t.Error("the stale socket's replacement was not logged")
	}

	// A second supervisor on the same socket refuses to start, and
	// starts no worker.
	second := exec.Command(paddockBin, "run", "--socket", sock, manifest)
	var stderr bytes.Buffer
	second.Stderr = &stderr
	err = second.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second supervisor: %v, want exit 1", err)
	}
	if !strings.Contains(stderr.String(), "another paddock supervisor is already serving this control socket") {
		t.Errorf("second supervisor's message: %s", stderr.String())
	}
	if strings.Contains(stderr.String(), "fork") {
		t.Errorf("the second supervisor started workers: %s", stderr.String())
	}
	// The first one is untouched.
	if n := len(liveWorkers(statusOf(t, sock), "web")); n != 1 {
		t.Errorf("%d workers after the refused start, want 1", n)
	}

	// Anything that is not a socket is left alone.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("keep me"), 0o644)
	out, err := exec.Command(paddockBin, "run", "--socket", file, manifest).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exists and is not a socket") {
		t.Errorf("a regular file as socket path: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was replaced")
	}

	// A graceful stop removes the socket.
	r.cmd.Process.Signal(syscall.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after the supervisor stopped: %v", err)
	}
}

func TestNoSupervisorAnswers(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	for _, args := range [][]string{{"status"}, {"events"}, {"scale", "web", "2"}, {"restart", "web"}, {"reload"},
		{"send", "web", "1"}, {"signal", "web", "HUP"}, {"logs"}, {"stop"}} {
		_, errOut, code := cli(t, sock, args...)
		if code != 1 || !strings.Contains(errOut, "no paddock supervisor answers on "+sock) {
			t.Errorf("paddock %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
	// diff keeps 1 for "something would change": errors are 2.
	if _, errOut, code := cli(t, sock, "diff"); code != 2 || !strings.Contains(errOut, "no paddock supervisor answers") {
		t.Errorf("paddock diff: exit %d, stderr %q", code, errOut)
	}
}

func TestStatusScaleReloadDiff(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 2))
	startWithSocket(t, sock, "--watch=false", manifest)
	waitWorkers(t, sock, "web", 2)

	// The table names every column and worker.
	table := mustCLI(t, sock, "status")
	for _, col := range []string{"APP", "WORKER", "PID", "STATE", "READY", "UPTIME", "RESTARTS", "LISTEN", "GENERATION", "DESIRED", "ROLLOUT"} {
		if !strings.Contains(table, col) {
			t.Errorf("status lacks column %s:\n%s", col, table)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^web\s+\d+\s+\d+\s+running\s+yes`).FindAllString(table, -1)); n != 2 {
		t.Errorf("status shows %d running ready web workers, want 2:\n%s", n, table)
	}
	if cli, api := liveWorkers(statusOfCLI(t, sock), "web"), liveWorkers(statusOf(t, sock), "web"); fmt.Sprint(cli) != fmt.Sprint(api) {
		t.Errorf("status --json shows %v, the API %v", cli, api)
	}

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
	os.WriteFile(manifest, []byte(strings.Replace(fmt.Sprintf(sleepers, 2), "[1000]", "[1001]", 1)), 0o644)
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
	os.WriteFile(manifest, []byte(strings.Replace(fmt.Sprintf(sleepers, 1), "[1000]", "[1001]", 1)), 0o644)
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

	// Invalid manifests: diff exits 2, reload 1 with file:line:col, and
	// nothing running changes.
	before := liveWorkers(statusOf(t, sock), "web")
	os.WriteFile(manifest, []byte("apps:\n  web:\n    exec: /bin/sleep\n    instances: lots\n"), 0o644)
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

// eventStream follows `paddock events --json` in the background.
type eventStream struct {
	mu     chan struct{}
	events []control.Event
	cmd    *exec.Cmd
}

func followEvents(t *testing.T, sock string, args ...string) *eventStream {
	t.Helper()
	cmd := exec.Command(paddockBin, append([]string{"events", "--json", "--socket", sock}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	es := &eventStream{mu: make(chan struct{}, 1), cmd: cmd}
	es.mu <- struct{}{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e control.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				<-es.mu
				es.events = append(es.events, e)
				es.mu <- struct{}{}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		cmd.Wait()
	})
	return es
}

// find returns the first event after index from that matches.
func (es *eventStream) find(from int, match func(control.Event) bool) (int, bool) {
	<-es.mu
	defer func() { es.mu <- struct{}{} }()
	for i := from; i < len(es.events); i++ {
		if match(es.events[i]) {
			return i, true
		}
	}
	return 0, false
}

func TestEventsSeeKill9AndRestart(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	startWithSocket(t, sock, manifest)
	var victim control.Worker
	for _, w := range waitWorkers(t, sock, "web", 1) {
		victim = w
	}
	es := followEvents(t, sock, "--app", "web")
	// The stream is open once it shows an event made after the command
	// started: scale to the instances web has makes one and changes
	// nothing.
	var opened int
	testkit.WaitFor(t, "the event stream to open", func() bool {
		mustCLI(t, sock, "scale", "web", "1")
		var ok bool
		opened, ok = es.find(0, func(e control.Event) bool { return e.Type == "scale" })
		return ok
	})
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exitAt, restartAt int
	testkit.WaitFor(t, "exit, restart and fork events", func() bool {
		var ok bool
		if exitAt, ok = es.find(opened, func(e control.Event) bool {
			return e.Type == "exit" && e.Worker == victim.ID && e.Signal == "SIGKILL" && e.Intended != nil && !*e.Intended
		}); !ok {
			return false
		}
		if restartAt, ok = es.find(exitAt, func(e control.Event) bool { return e.Type == "restart" && e.App == "web" }); !ok {
			return false
		}
		_, ok = es.find(restartAt, func(e control.Event) bool { return e.Type == "fork" && e.App == "web" && e.Worker != victim.ID })
		return ok
	})
	// The text form too.
	out, err := exec.Command(paddockBin, "events", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--app") {
		t.Errorf("events --help: %v %s", err, out)
	}
}

func TestRestartWait(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, nil, 0o644)
	// Ready (READY=1 over NOTIFY_SOCKET) while the file "ok" exists; else
	// the worker exits at once, before it is ready, which stalls a
	// rolling restart whatever the machine's speed. Ready ones have all
	// the time they need.
	manifest := writeManifest(t, `
apps:
  web:
    exec: `+selfPath(t)+`
    env: {PADDOCK_TEST_HELPER: ready-if, OK: `+ok+`}
    instances: 2
    readiness: notify
    readyTimeout: 60s
    killTimeout: 2s
`)
	startWithSocket(t, sock, manifest)
	testkit.WaitFor(t, "2 ready workers", func() bool { return appOf(t, statusOf(t, sock), "web").Ready == 2 })
	old := waitWorkers(t, sock, "web", 2)

	out, errOut, code := cli(t, sock, "restart", "web", "--wait")
	if code != 0 || !strings.Contains(out, "rolling restart of 2 workers") || !strings.Contains(out, "web: complete") {
		t.Fatalf("restart --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	now := waitWorkers(t, sock, "web", 2)
	for id := range now {
		if _, ok := old[id]; ok {
			t.Errorf("worker %d survived the restart", id)
		}
	}
	gen := appOf(t, statusOf(t, sock), "web").Generation
	if !strings.HasSuffix(gen, "-r1") {
		t.Errorf("generation after one restart: %s", gen)
	}

	// New workers that exit before they are ready: the restart stalls,
	// exit 1, and the old workers keep serving.
	os.Remove(ok)
	out, errOut, code = cli(t, sock, "restart", "--wait", "web")
	if code != 1 || !strings.Contains(out, "stalled") {
		t.Fatalf("restart --wait of a stalling app: exit %d\n%s\n%s", code, out, errOut)
	}
	st := statusOf(t, sock)
	served := 0
	for _, w := range st.Workers {
		if w.App == "web" && w.Ready && w.Generation == gen {
			served++
		}
	}
	if served == 0 {
		t.Errorf("no worker of the previous generation serves after the stall: %+v", st.Workers)
	}

	// Without --wait it returns at once; unknown apps are refused.
	if out := mustCLI(t, sock, "restart", "web"); !strings.Contains(out, "rolling restart") {
		t.Errorf("restart: %q", out)
	}
	if _, errOut, code := cli(t, sock, "restart", "nope"); code != 1 || !strings.Contains(errOut, "no such app") {
		t.Errorf("restart nope: exit %d %q", code, errOut)
	}
}

// TestSendSignalLogs drives a Node worker: its IPC channel (process.send
// and 'message') is what `paddock send` talks to.
func TestSendSignalLogs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	sock := socketPath(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "echo.js")
	os.WriteFile(script, []byte(`
process.on('message', (m) => console.log('got ' + JSON.stringify(m)));
process.on('SIGUSR2', () => console.log('usr2 in ' + process.env.PADDOCK_WORKER_ID));
console.error('started ' + process.env.PADDOCK_WORKER_ID);
setInterval(() => {}, 1000);
`), 0o644)
	manifest := writeManifest(t, `
apps:
  web:
    exec: `+script+`
    instances: 2
    silent: true
    killTimeout: 2s
`)
	startWithSocket(t, sock, manifest)
	ws := waitWorkers(t, sock, "web", 2)
	var ids []int
	for id := range ws {
		ids = append(ids, id)
	}
	logsHave := func(target, want string) bool {
		out, _, _ := cli(t, sock, "logs", target)
		return strings.Contains(out, want)
	}
	for _, id := range ids {
		testkit.WaitFor(t, "the start line in logs", func() bool {
			return logsHave("web", fmt.Sprintf("web/%d | started %d", id, id))
		})
	}

	// logs -f sees what comes next.
	// Flags after the argument, as operators type them.
	follow := exec.Command(paddockBin, "logs", "web", "-f", "--lines", "0", "--socket", sock)
	fout, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Signal(syscall.SIGTERM); follow.Wait() }()
	var fmu sync.Mutex
	var followed []string
	go func() {
		sc := bufio.NewScanner(fout)
		for sc.Scan() {
			fmu.Lock()
			followed = append(followed, sc.Text())
			fmu.Unlock()
		}
	}()
	sawFollowed := func(want string) bool {
		fmu.Lock()
		defer fmu.Unlock()
		return strings.Contains(strings.Join(followed, "\n"), want)
	}
	// The follower is open once it shows a line written after it started.
	marker := 0
	testkit.WaitFor(t, "logs -f to follow", func() bool {
		marker++
		mustCLI(t, sock, "send", "web", fmt.Sprintf(`{"marker":%d}`, marker))
		return sawFollowed(`got {"marker":`)
	})

	// send to all, then to one.
	if out := mustCLI(t, sock, "send", "web", `{"hello":"all"}`); !strings.Contains(out, "delivered to 2 workers") {
		t.Errorf("send to all: %q", out)
	}
	one := ids[0]
	if out := mustCLI(t, sock, "send", fmt.Sprintf("web/%d", one), `"just you"`); !strings.Contains(out, "delivered to 1 worker") {
		t.Errorf("send to one: %q", out)
	}
	for _, id := range ids {
		testkit.WaitFor(t, "the message in logs", func() bool {
			return logsHave(fmt.Sprintf("web/%d", id), `got {"hello":"all"}`)
		})
	}
	testkit.WaitFor(t, "the direct message", func() bool { return logsHave(fmt.Sprintf("web/%d", one), `got "just you"`) })
	if logsHave(fmt.Sprintf("web/%d", ids[1]), "just you") {
		t.Error("the message for one worker reached another")
	}

	// signal one worker.
	if out := mustCLI(t, sock, "signal", fmt.Sprintf("web/%d", one), "USR2"); !strings.Contains(out, fmt.Sprintf("signalled web/%d", one)) {
		t.Errorf("signal: %q", out)
	}
	testkit.WaitFor(t, "the signal's effect", func() bool { return logsHave("web", fmt.Sprintf("usr2 in %d", one)) })
	if _, errOut, code := cli(t, sock, "signal", "web/999", "USR2"); code != 1 || !strings.Contains(errOut, "no such live worker") {
		t.Errorf("signal of a missing worker: exit %d %q", code, errOut)
	}

	// The follower saw the messages arrive.
	testkit.WaitFor(t, "logs -f to show the signal's effect", func() bool { return sawFollowed(fmt.Sprintf("usr2 in %d", one)) })
	if !sawFollowed(`got {"hello":"all"}`) {
		fmu.Lock()
		t.Errorf("logs -f missed the message: %q", followed)
		fmu.Unlock()
	}

	// --lines bounds the tail.
	out := mustCLI(t, sock, "logs", "--lines", "1", "web")
	if n := strings.Count(out, "\n"); n != 1 {
		t.Errorf("logs --lines 1 printed %d lines: %q", n, out)
	}
	// --json.
	out = mustCLI(t, sock, "logs", "--json", "--lines", "1", fmt.Sprintf("web/%d", one))
	var line control.LogLine
	if err := json.Unmarshal([]byte(out), &line); err != nil || line.Worker != one || line.App != "web" || line.Stream == "" {
		t.Errorf("logs --json: %v %q", err, out)
	}
}

func TestStopCommand(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 2))
	r := startWithSocket(t, sock, manifest)
	ws := waitWorkers(t, sock, "web", 2)
	out := mustCLI(t, sock, "stop")
	if !strings.Contains(out, "stopped") {
		t.Errorf("stop: %q", out)
	}
	if code := r.wait(); code != 0 {
		t.Errorf("paddock exited %d after stop", code)
	}
	for _, w := range ws {
		if !dead(w.PID) {
			t.Errorf("worker %d (pid %d) outlived paddock stop", w.ID, w.PID)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 2))
	r := startWithSocket(t, sock, "--metrics-addr", "127.0.0.1:0", manifest)
	ws := waitWorkers(t, sock, "web", 2)
	var url string
	testkit.WaitFor(t, "the metrics address in the log", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.logs {
			if m["msg"] == "serving metrics" {
				url, _ = m["url"].(string)
			}
		}
		return url != ""
	})
	scrape := func() string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	body := scrape()
	for _, want := range []string{
		`paddock_workers_desired{app="web"} 2`,
		`paddock_workers_running{app="web"} 2`,
		`paddock_workers_ready{app="web"} 2`,
		`paddock_worker_start_seconds_count{app="web"} 2`,
		`paddock_reloads_total{result="failed"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, w := range ws {
		syscall.Kill(w.PID, syscall.SIGKILL)
		break
	}
	testkit.WaitFor(t, "the exit and restart counted", func() bool {
		body := scrape()
		return strings.Contains(body, `paddock_worker_exits_total{app="web",cause="signal"} 1`) &&
			strings.Contains(body, `paddock_worker_restarts_total{app="web"} 1`)
	})
	mustCLI(t, sock, "reload")
	if body := scrape(); !strings.Contains(body, `paddock_reloads_total{result="unchanged"}`) {
		t.Errorf("reload not counted:\n%s", body)
	}
}

func TestSystemdNotifications(t *testing.T) {
	t.Parallel()
	ns, err := notify.Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	msgs := make(chan notify.Message, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ns.Run(ctx, msgs)

	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 2))
	cmd := exec.Command(paddockBin, "run", "--log-format", "json", "--watch=false", "--socket", sock, manifest)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.Path())
	r := startPaddockCmd(t, cmd)

	next := func(what string, match func(map[string]string) bool) map[string]string {
		t.Helper()
		deadline := time.After(patience)
		for {
			select {
			case m := <-msgs:
				if m.PID != cmd.Process.Pid {
					t.Errorf("notification from pid %d, not paddock's %d: %v", m.PID, cmd.Process.Pid, m.Fields)
				}
				if match(m.Fields) {
					return m.Fields
				}
			case <-deadline:
				t.Fatalf("no %s notification", what)
			}
		}
	}
	next("READY=1", func(f map[string]string) bool { return f["READY"] == "1" })
	// The workers are running by then: READY means converged.
	if n := len(liveWorkers(statusOf(t, sock), "web")); n != 2 {
		t.Errorf("READY=1 sent with %d workers running, want 2", n)
	}
	next("STATUS", func(f map[string]string) bool { return f["STATUS"] == "1 app, 2/2 workers ready" })
	r.cmd.Process.Signal(syscall.SIGHUP)
	f := next("RELOADING=1", func(f map[string]string) bool { return f["RELOADING"] == "1" })
	if usec, err := strconv.ParseInt(f["MONOTONIC_USEC"], 10, 64); err != nil || usec <= 0 {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %v", f)
	}
	next("READY=1 after the reload", func(f map[string]string) bool { return f["READY"] == "1" })
	r.cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1", func(f map[string]string) bool { return f["STOPPING"] == "1" })
	if code := r.wait(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := cli(t, socketPath(t), "completion", shell)
		if code != 0 || !strings.Contains(out, "paddock") || strings.Contains(out, "%!") {
			t.Errorf("completion %s: exit %d %q\n%s", shell, code, errOut, out)
		}
		for _, c := range []string{"status", "restart", "diff", "logs"} {
			if !strings.Contains(out, c) {
				t.Errorf("completion %s lacks %s", shell, c)
			}
		}
		if shell == "bash" {
			check := exec.Command("bash", "-n")
			check.Stdin = strings.NewReader(out)
			if b, err := check.CombinedOutput(); err != nil {
				t.Errorf("bash -n on the bash completion: %v\n%s", err, b)
			}
		}
	}
	if _, _, code := cli(t, socketPath(t), "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// TestSocketOfAnotherUser: a socket served by another user is neither
// trusted by a client that is not root nor taken over by a supervisor.
func TestSocketOfAnotherUser(t *testing.T) {
	t.Parallel()
	testkit.NeedRoot(t, "to run processes as other users")
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(paddockBin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o777); err != nil { // like /tmp, minus the sticky bit
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "paddock.yaml")
	os.WriteFile(manifest, []byte(fmt.Sprintf(sleepers, 1)), 0o644)
	sock := filepath.Join(dir, "control.sock")

	// A supervisor run by nobody.
	cmd := exec.Command(paddockBin, "run", "--log-format", "json", "--socket", sock, manifest)
	cmd.Dir = dir
	testkit.AsUser(cmd, testkit.Nobody)
	startPaddockCmd(t, cmd)
	testkit.WaitFor(t, "nobody's supervisor", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// root may talk to it (and is served: root is always let in).
	if n := len(waitWorkers(t, sock, "web", 1)); n != 1 {
		t.Fatalf("%d workers", n)
	}
	// A client of uid 1000 refuses to talk to it, even when the mode lets
	// it connect.
	os.Chmod(sock, 0o666)
	client := exec.Command(paddockBin, "status", "--socket", sock)
	testkit.AsUser(client, 1000)
	out, err := client.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "uid 65534") ||
		!strings.Contains(string(out), "refusing to talk to it") {
		t.Errorf("status as uid 1000 against nobody's supervisor: %v\n%s", err, out)
	}
	// A supervisor of root's does not take the name over.
	second, err := exec.Command(paddockBin, "run", "--socket", sock, manifest).CombinedOutput()
	if err == nil || !strings.Contains(string(second), "belongs to uid 65534") {
		t.Errorf("root's supervisor on nobody's socket: %v\n%s", err, second)
	}
}
