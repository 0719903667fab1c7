package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// startLogged starts a supervisor over yaml whose log (debug and up, as
// text) is returned as it grows.
func startLogged(t *testing.T, yaml string) (*harness, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	h := startWith(t, yaml, func(_ *harness, o *Options) {
		var w io.Writer = logs
		if testing.Verbose() {
			w = io.MultiWriter(logs, os.Stderr)
		}
		o.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	return h, logs
}

// waitOutput waits until what shows in buf.
func waitOutput(t *testing.T, buf *testkit.Buffer, what string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !strings.Contains(buf.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", what, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workerOf returns the worker of app in ws (the first, if several).
func workerOf(t *testing.T, ws []WorkerInfo, app string) WorkerInfo {
	t.Helper()
	for _, w := range ws {
		if w.App == app {
			return w
		}
	}
	t.Fatalf("no worker of %s in %+v", app, ws)
	return WorkerInfo{}
}

// readyOf returns a condition for waitWorkers: every app named in want
// has one running worker, ready as want says.
func readyOf(want map[string]bool) func([]WorkerInfo) bool {
	return func(ws []WorkerInfo) bool {
		n := 0
		for _, w := range ws {
			r, ok := want[w.App]
			if !ok || w.PID == 0 || w.Ready != r {
				return false
			}
			n++
		}
		return n == len(want)
	}
}

// waitFiles waits until dir holds ready.<id> for each worker id (see
// serve).
func waitFiles(t *testing.T, dir string, ids ...int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for _, id := range ids {
		for {
			if _, err := os.Stat(filepath.Join(dir, "ready."+strconv.Itoa(id))); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker %d never made %s/ready.%d", id, dir, id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestNotifyFromNonWorkerIsIgnored: the notification socket takes
// datagrams from every local user (mode 0622). A process that is neither a
// worker nor in a worker's process group sends READY=1 to a notify
// worker's NOTIFY_SOCKET: the supervisor logs it at warn, marks no worker
// ready and keeps running; the worker's own READY=1, sent after, marks it
// ready. The stranger runs as nobody when the test runs as root.
func TestNotifyFromNonWorkerIsIgnored(t *testing.T) {
	t.Parallel()
	h, logs := startLogged(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-on-usr1, READY_DIR: $DIR}
    readiness: notify
    readyTimeout: 1h
`)
	ws := h.waitWorkers("web running", readyOf(map[string]bool{"web": false}))
	h.waitReady(ws) // its SIGUSR1 handler is in place
	web := workerOf(t, ws, "web")
	sock := environ(t, web.PID)["NOTIFY_SOCKET"]
	if sock == "" {
		t.Fatalf("worker pid %d has no NOTIFY_SOCKET", web.PID)
	}

	stranger := exec.Command(os.Args[0])
	if os.Geteuid() == 0 {
		stranger = exec.Command(testkit.PublicCopy(t, testkit.PublicDir(t)))
		stranger.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		t.Logf("not root: the stranger runs as uid %d, the test's user", os.Geteuid())
	}
	stranger.Env = append(os.Environ(), "PADDOCK_TEST_HELPER=notify-send-hold", "NOTIFY_SOCKET="+sock)
	hold, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	stranger.Stdin, stranger.Stdout, stranger.Stderr = hold, &out, &out
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	hold.Close()
	// Alive until the test is done with it: its message is read while it
	// exists, and it is known as the process it is.
	defer func() {
		release.Close()
		_ = stranger.Wait() // the supervisor may have reaped it first
	}()

	waitOutput(t, logs, fmt.Sprintf(`level=WARN msg="notification from a process that is not a worker, ignored" pid=%d`, stranger.Process.Pid))
	// The supervisor took that message (and lived): a request is served,
	// and the worker is not ready.
	ws, err = h.sup.Workers(context.Background())
	if err != nil {
		t.Fatalf("the supervisor after a stranger's notification: %v", err)
	}
	if w := workerOf(t, ws, "web"); w.Ready {
		t.Fatalf("worker %+v is ready after a stranger's READY=1", w)
	}
	if err := syscall.Kill(web.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitWorkers("web ready by its own READY=1", readyOf(map[string]bool{"web": true}))
}

// TestNotifyCannotSpeakForAnotherWorker: worker a, running as a user the
// kernel lets claim no other pid (nobody when the test runs as root, the
// test's own user otherwise), sends READY=1 with credentials that claim
// worker b's pid, then "MAINPID=<b's pid>\nREADY=1" as itself: the kernel
// refuses the claim, the second message marks a ready, never b; b's own
// READY=1 marks it ready after. (A worker with CAP_SYS_ADMIN, such as one
// running as root, can claim any pid, and nothing tells: see
// notify.TestForgedCredentials.)
func TestNotifyCannotSpeakForAnotherWorker(t *testing.T) {
	t.Parallel()
	dir := testkit.PublicDir(t)
	bin, user := self(t), ""
	if os.Geteuid() == 0 {
		bin, user = testkit.PublicCopy(t, dir), "\n    user: nobody"
	} else {
		t.Logf("not root: worker a runs as uid %d, the test's user", os.Geteuid())
	}
	claim := filepath.Join(dir, "claim")
	readyDir := filepath.Join(dir, "ready") // where nobody may write
	if err := os.Mkdir(readyDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readyDir, 0o777); err != nil { // whatever the umask
		t.Fatal(err)
	}
	h := start(t, fmt.Sprintf(`
apps:
  a:
    exec: %s
    env: {PADDOCK_TEST_HELPER: notify-claim, CLAIM_FILE: %s, READY_DIR: %s}%s
    cwd: /
    readiness: notify
    readyTimeout: 1h
    silent: true
  b:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-on-usr1, READY_DIR: %s}
    readiness: notify
    readyTimeout: 1h
`, bin, claim, readyDir, user, readyDir))
	ws := h.waitWorkers("a and b running", readyOf(map[string]bool{"a": false, "b": false}))
	a, b := workerOf(t, ws, "a"), workerOf(t, ws, "b")
	waitFiles(t, readyDir, a.ID, b.ID) // their SIGUSR1 handlers are in place
	if err := testkit.WriteFile(claim, []byte(strconv.Itoa(b.PID)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(a.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// a's own message comes after its claim: once a is ready, the claim
	// was taken too, if it was sent at all.
	h.waitWorkers("a ready, b not", readyOf(map[string]bool{"a": true, "b": false}))
	if want := fmt.Sprintf("claim of pid %d: EPERM", b.PID); !strings.Contains(h.out.String(), want) {
		t.Errorf("worker a's output says no %q:\n%s", want, h.out.String())
	}
	if err := syscall.Kill(b.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitWorkers("b ready by its own READY=1", readyOf(map[string]bool{"a": true, "b": true}))
}

// TestNotifyFromWorkersGroup: a process in worker a's process group (its
// child, as `systemd-notify --ready` in a script) sends READY=1: a is
// marked ready, never b; b's own READY=1 marks it ready after.
func TestNotifyFromWorkersGroup(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  a:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-from-child}
    readiness: notify
    readyTimeout: 1h
  b:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-on-usr1, READY_DIR: $DIR}
    readiness: notify
    readyTimeout: 1h
`)
	ws := h.waitWorkers("a ready by its child, b not", readyOf(map[string]bool{"a": true, "b": false}))
	h.waitReady([]WorkerInfo{workerOf(t, ws, "b")}) // its SIGUSR1 handler is in place
	if err := syscall.Kill(workerOf(t, ws, "b").PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitWorkers("b ready by its own READY=1", readyOf(map[string]bool{"a": true, "b": true}))
}

// TestNotifyFromReapedSenderIgnored: a message whose sender was reaped
// before it was read (notify.Message.Reaped, known with SCM_PIDFD) counts
// for no worker, even when its pid is a worker's: the pid may have been
// reused by that worker since. The same message from a sender known to be
// alive marks the worker ready. (The reuse itself cannot be arranged here:
// the messages are handed to the supervisor as its notify socket would.)
func TestNotifyFromReapedSenderIgnored(t *testing.T) {
	t.Parallel()
	h, logs := startLogged(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve}
    readiness: notify
    readyTimeout: 1h
`)
	ws := h.waitWorkers("web running", readyOf(map[string]bool{"web": false}))
	pid := workerOf(t, ws, "web").PID
	take := func(m notify.Message) {
		t.Helper()
		if err := h.sup.do(context.Background(), func(o *owner) { o.handleNotify(m) }); err != nil {
			t.Fatal(err)
		}
	}
	ready := map[string]string{"READY": "1"}
	take(notify.Message{PID: pid, Reaped: true, Fields: ready, Time: time.Now()})
	ws, err := h.sup.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if w := workerOf(t, ws, "web"); w.Ready {
		t.Fatalf("worker %+v is ready after a reaped sender's READY=1", w)
	}
	waitOutput(t, logs, fmt.Sprintf(`level=WARN msg="notification from a process reaped before it was read, ignored" pid=%d`, pid))
	take(notify.Message{PID: pid, PGID: pid, Fields: ready, Time: time.Now()})
	h.waitWorkers("web ready", readyOf(map[string]bool{"web": true}))
}
