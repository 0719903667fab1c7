package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
	gworker "github.com/paddock-sh/paddock/worker"
)

// serveHealth is a worker with a health path. It serves HTTP on its
// LISTEN_FDS sockets, or, with an IPC channel, on worker.Listen of
// 127.0.0.1:$PORT (rr, sticky: paddock hands it the connections); and on
// its own health socket when it has one: worker.HealthListener, or with
// $HEALTH_VIA_CLUSTER set worker.Listen of $PADDOCK_HEALTH_ADDR, which
// asks paddock over the cluster protocol as a Node worker's listen()
// does. GET /healthz answers 200 "ok <id> <pid>" when its worker id is in
// $HEALTHY_IDS (a comma-separated list, or "all"), else 500 "sick <id>
// <pid>"; with $HEALTH_HANG set it creates $STAMP_DIR/hang.<id> and never
// answers. Any other path answers "<id> <pid>". With $HEALTH_IDLE_TIMEOUT
// it closes connections idle that long. It exits 0 on SIGTERM, or once
// disconnected, unless $HEALTH_IGNORE_TERM is set.
func serveHealth() {
	id := os.Getenv("PADDOCK_WORKER_ID")
	healthy := os.Getenv("HEALTHY_IDS") == "all" || slices.Contains(strings.Split(os.Getenv("HEALTHY_IDS"), ","), id)
	var hangOnce sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("HEALTH_HANG") != "" {
			hangOnce.Do(func() {
				f, _ := os.Create(filepath.Join(os.Getenv("STAMP_DIR"), "hang."+id))
				f.Close()
			})
			select {} // never answers
		}
		if !healthy {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "sick %s %d\n", id, os.Getpid())
			return
		}
		fmt.Fprintf(w, "ok %s %d\n", id, os.Getpid())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d\n", id, os.Getpid())
	})
	srv := &http.Server{Handler: mux}
	if d, err := time.ParseDuration(os.Getenv("HEALTH_IDLE_TIMEOUT")); err == nil {
		srv.IdleTimeout = d // closes a keep-alive connection idle that long
	}
	fail := func(code int, err error) {
		fmt.Fprintln(os.Stderr, "health worker:", err)
		os.Exit(code)
	}
	if os.Getenv("NODE_CHANNEL_FD") != "" {
		l, err := gworker.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fail(20, err)
		}
		go srv.Serve(l)
	} else if n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS")); n > 0 {
		for i := range n {
			f := os.NewFile(uintptr(3+i), "listen")
			l, err := net.FileListener(f)
			if err != nil {
				fail(21, err)
			}
			f.Close()
			go srv.Serve(l)
		}
	}
	if os.Getenv("PADDOCK_HEALTH_ADDR") != "" {
		var l net.Listener
		var err error
		if os.Getenv("HEALTH_VIA_CLUSTER") != "" {
			l, err = gworker.Listen("tcp", os.Getenv("PADDOCK_HEALTH_ADDR"))
		} else {
			l, err = gworker.HealthListener()
		}
		if err != nil {
			fail(22, err)
		}
		go srv.Serve(l)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if os.Getenv("HEALTH_IGNORE_TERM") != "" {
		select {}
	}
	select {
	case <-term:
	case <-gworker.Disconnecting(): // nil without a channel: never
	}
	os.Exit(0)
}

// probeHelper is the test binary run as an exec health probe (its first
// argument is the mode, since its environment is its worker's):
//
//	probe:env    write what it was started with to $STAMP_DIR/probe.<worker id>
//	             (pid=, app=, id=, cwd=, greeting=), exit 0
//	probe:hang   start a child in its process group (probe:sleep), write
//	             "<pid> <child pid>" to $STAMP_DIR/hang-probe.<pid>, print a
//	             line and sleep for ever
//	probe:sleep  sleep for ever
//	probe:noisy  print 1 MiB of lines, then "the last words", exit 3
func probeHelper(mode string) {
	dir := os.Getenv("STAMP_DIR")
	switch mode {
	case "probe:env":
		cwd, _ := os.Getwd()
		content := fmt.Sprintf("pid=%s\napp=%s\nid=%s\ncwd=%s\ngreeting=%s\n", os.Getenv(WorkerPIDEnv),
			os.Getenv("PADDOCK_APP"), os.Getenv("PADDOCK_WORKER_ID"), cwd, os.Getenv("GREETING"))
		final := filepath.Join(dir, "probe."+os.Getenv("PADDOCK_WORKER_ID"))
		tmp := final + ".tmp." + strconv.Itoa(os.Getpid())
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			os.Exit(30)
		}
		if err := os.Rename(tmp, final); err != nil {
			os.Exit(31)
		}
		os.Exit(0)
	case "probe:hang":
		cmd := exec.Command(os.Args[0], "probe:sleep")
		if err := cmd.Start(); err != nil {
			os.Exit(32)
		}
		stamp := fmt.Sprintf("%d %d", os.Getpid(), cmd.Process.Pid)
		if err := os.WriteFile(filepath.Join(dir, "hang-probe."+strconv.Itoa(os.Getpid())), []byte(stamp), 0o644); err != nil {
			os.Exit(33)
		}
		fmt.Println("checking the database, please wait")
		select {}
	case "probe:sleep":
		select {}
	case "probe:noisy":
		line := strings.Repeat("x", 1023) + "\n"
		for range 1024 {
			os.Stdout.WriteString(line)
		}
		fmt.Println("the last words")
		os.Exit(3)
	}
	fmt.Fprintln(os.Stderr, "unknown probe mode", mode)
	os.Exit(2)
}

// healthCounts returns the probes of app by result so far.
func (h *harness) healthCounts(app string) HealthCounts {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := h.sup.HealthChecks(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return c[app]
}

// waitHealth polls until app's probe counts satisfy cond.
func (h *harness) waitHealth(app, what string, cond func(HealthCounts) bool) HealthCounts {
	h.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		c := h.healthCounts(app)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; probes of %s: %+v", what, app, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// liveWorker returns app's live worker id from ws, failing when it has
// none.
func liveWorker(t *testing.T, ws []WorkerInfo, id int) WorkerInfo {
	t.Helper()
	for _, w := range ws {
		if w.ID == id && w.PID != 0 && w.Phase == reconcile.Running {
			return w
		}
	}
	t.Fatalf("worker %d is not live: %+v", id, ws)
	return WorkerInfo{}
}

// TestHealthCheckReplacesOnlyTheSickWorker (issue 17): two workers on one
// shared port, worker 1 healthy and every other worker answering 500 on
// its health path. Over 20 probe rounds of worker 1, only sick workers are
// replaced, each time new first (health-failed, then a new worker forked
// and ready, then the replaced event, then the sick one stopped), and
// worker 1 keeps its pid. With the port shared (none, reuseport) each
// worker is probed on a loopback socket of its own (port: worker); under
// rr and sticky paddock hands the probe's connection to the worker it
// judges, or answers the worker's cluster listen() of its health address
// with its own socket.
func TestHealthCheckReplacesOnlyTheSickWorker(t *testing.T) {
	t.Parallel()
	const common = `
    instances: 2
    minReadyTime: 0s
    readyTimeout: 60s
    killTimeout: 60s
    healthCheck:
      http: {path: /healthz, port: %s}
      interval: 100ms
      timeout: 30s
      failureThreshold: 2`
	for _, tc := range []struct {
		name, app, port, env string
		rr                   bool
	}{
		{name: "none", app: "schedulingPolicy: none\n    ipc: off\n    listen: [\"127.0.0.1:0\"]", port: "worker"},
		{name: "reuseport", app: "schedulingPolicy: reuseport\n    ipc: off\n    listen: [\"127.0.0.1:0\"]", port: "worker"},
		{name: "rr", app: "schedulingPolicy: rr\n    ipc: node\n    readiness: listening\n    listen: [\"127.0.0.1:%[1]d\"]",
			port: "listen", rr: true},
		{name: "sticky", app: "schedulingPolicy: sticky\n    ipc: node\n    readiness: listening\n    listen: [\"127.0.0.1:%[1]d\"]",
			port: "listen", rr: true},
		{name: "rr-health-socket-over-cluster", app: "schedulingPolicy: rr\n    ipc: node\n    readiness: listening\n    listen: [\"127.0.0.1:%[1]d\"]",
			port: "worker", env: ", HEALTH_VIA_CLUSTER: \"1\"", rr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app, port := tc.app, ""
			if tc.rr {
				p := freePort(t)
				app, port = fmt.Sprintf(app, p), strconv.Itoa(p)
			}
			h := start(t, "\napps:\n  web:\n    exec: $SELF\n    "+app+fmt.Sprintf(common, tc.port)+
				"\n    env: {PADDOCK_TEST_HELPER: health, HEALTHY_IDS: \"1\", PORT: \""+port+"\", STAMP_DIR: $DIR"+tc.env+"}\n")
			testOnlySickReplaced(t, h)
		})
	}
}

// testOnlySickReplaced is TestHealthCheckReplacesOnlyTheSickWorker on a
// supervisor h running app web.
func testOnlySickReplaced(t *testing.T, h *harness) {
	ws := h.waitWorkers("workers 1 and 2", func(ws []WorkerInfo) bool {
		return slices.ContainsFunc(ws, func(w WorkerInfo) bool { return w.ID == 1 && w.PID != 0 })
	})
	healthy := liveWorker(t, ws, 1)
	// Only worker 1 ever passes: 20 passes are 20 of its rounds.
	h.waitHealth("web", "20 probe rounds of worker 1", func(c HealthCounts) bool {
		for _, e := range h.drain() {
			if (e.Type == EventHealthFailed || e.Type == EventReplaced) && e.Worker == 1 {
				t.Fatalf("the healthy worker was judged sick: %s", describe([]Event{e}))
			}
		}
		return c.Pass >= 20
	})
	// And at least three sick workers were replaced meanwhile, or since.
	var replaced []Event
	for len(replaced) < 3 {
		rep := h.waitEvent("a sick worker replaced", isType(EventReplaced))
		replaced = append(replaced, rep)
		// Its stop follows its replaced event, perhaps not yet received:
		// wait for it, so that checkNewFirst below sees it.
		h.waitEvent(fmt.Sprintf("worker %d stopped", rep.Worker), func(e Event) bool {
			return (e.Type == EventStopping || e.Type == EventDisconnect) && e.Worker == rep.Worker
		})
	}
	events := h.drain()
	for _, e := range events {
		if (e.Type == EventHealthFailed || e.Type == EventReplaced) && e.Worker == 1 {
			t.Fatalf("the healthy worker was judged sick: %s\nall events: %s", describe([]Event{e}), describe(events))
		}
		if e.Type == EventHealthFailed && (!strings.Contains(e.Detail, "HTTP 500 Internal Server Error: sick "+strconv.Itoa(e.Worker)) || e.Attempt != 2) {
			t.Errorf("health-failed event without the sick worker's own answer: %s", describe([]Event{e}))
		}
	}
	for _, rep := range replaced {
		checkNewFirst(t, events, rep.Worker)
	}
	after := h.waitWorkers("worker 1 still serving", func(ws []WorkerInfo) bool { return true })
	if w := liveWorker(t, after, 1); w.PID != healthy.PID || w.Restarts != 0 {
		t.Errorf("the healthy worker changed: pid %d restarts %d, was pid %d", w.PID, w.Restarts, healthy.PID)
	}
	for _, e := range events {
		if e.Type == EventExit && e.Worker == 1 {
			t.Errorf("the healthy worker exited: %s", describe([]Event{e}))
		}
	}
}

// checkNewFirst checks, in events, that sick worker id was replaced new
// first: its health-failed event, then the fork and the ready event of a
// new worker, then its replaced event, then its stop (stopping or
// disconnect).
func checkNewFirst(t *testing.T, events []Event, id int) {
	t.Helper()
	at := func(from int, match func(Event) bool) int {
		for i := from; i < len(events); i++ {
			if match(events[i]) {
				return i
			}
		}
		return -1
	}
	failed := at(0, func(e Event) bool { return e.Type == EventHealthFailed && e.Worker == id })
	replaced := at(0, func(e Event) bool { return e.Type == EventReplaced && e.Worker == id })
	stopped := at(0, func(e Event) bool {
		return (e.Type == EventStopping || e.Type == EventDisconnect) && e.Worker == id
	})
	if failed < 0 || replaced < failed || stopped < replaced {
		t.Fatalf("worker %d: health-failed at %d, replaced at %d, stopped at %d; events: %s", id, failed, replaced, stopped, describe(events))
	}
	fork := at(failed, func(e Event) bool { return e.Type == EventFork })
	if fork < 0 || fork > replaced {
		t.Fatalf("worker %d was replaced before a new worker was forked: %s", id, describe(events))
	}
	ready := at(fork, func(e Event) bool { return e.Type == EventReady && e.Worker == events[fork].Worker })
	if ready < 0 || ready > replaced {
		t.Fatalf("worker %d was replaced before its replacement %d was ready: %s", id, events[fork].Worker, describe(events))
	}
}

// TestHealthCheckNodeClusterWorkers: Node cluster workers under none each
// serve their health path on their own socket, with listen({fd:
// PADDOCK_HEALTH_FD}) answered by paddock over the cluster protocol: only
// the sick one is replaced.
func TestHealthCheckNodeClusterWorkers(t *testing.T) {
	t.Parallel()
	const script = `const cluster = require('node:cluster');
const http = require('node:http');
if (cluster.isPrimary) throw new Error('run by paddock');
const id = process.env.PADDOCK_WORKER_ID;
const healthy = process.env.HEALTHY_IDS.split(',').includes(id);
const handler = (req, res) => {
  if (req.url === '/healthz' && !healthy) { res.writeHead(500); res.end('sick ' + id + ' ' + process.pid + '\n'); return; }
  res.writeHead(200); res.end((req.url === '/healthz' ? 'ok ' : '') + id + ' ' + process.pid + '\n');
};
http.createServer(handler).listen({fd: 3});
http.createServer(handler).listen({fd: +process.env.PADDOCK_HEALTH_FD});
`
	h := startNode(t, script, `
apps:
  web:
    exec: ./server.js
    instances: 2
    schedulingPolicy: none
    listen: ["127.0.0.1:0"]
    readiness: listening
    minReadyTime: 0s
    readyTimeout: 60s
    killTimeout: 60s
    healthCheck:
      http: {path: /healthz, port: worker}
      interval: 100ms
      timeout: 30s
      failureThreshold: 2
    env: {HEALTHY_IDS: "1"}
`)
	testOnlySickReplaced(t, h)
}

// TestExecProbeRunsAsTheWorker: an exec probe runs in its worker's
// environment (the app's env, PADDOCK_APP, PADDOCK_WORKER_ID and
// PADDOCK_WORKER_PID, the worker's pid) and working directory, and its
// exit 0 makes a worker of readiness exec ready.
func TestExecProbeRunsAsTheWorker(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: exec
    readyTimeout: 60s
    healthCheck:
      exec: [$SELF, "probe:env"]
      interval: 1h
      timeout: 30s
    env: {PADDOCK_TEST_HELPER: serve, GREETING: hello, STAMP_DIR: $DIR}
`)
	ws := h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
		return len(ws) == 2 && ws[0].Ready && ws[1].Ready
	})
	for _, w := range ws {
		b, err := os.ReadFile(filepath.Join(h.dir, "probe."+strconv.Itoa(w.ID)))
		if err != nil {
			t.Fatalf("worker %d ready, yet its probe left nothing: %v", w.ID, err)
		}
		want := fmt.Sprintf("pid=%d\napp=web\nid=%d\ncwd=%s\ngreeting=hello\n", w.PID, w.ID, h.dir)
		if string(b) != want {
			t.Errorf("worker %d's probe saw\n%s\nwant\n%s", w.ID, b, want)
		}
	}
	if c := h.healthCounts("web"); c.Pass != 2 || c.Fail != 0 || c.Timeout != 0 {
		t.Errorf("probes %+v, want 2 passes", c)
	}
}

// TestExecProbeTimeoutKillsItsGroup: an exec probe that does not exit
// within its timeout is killed with its process group, leaving no process
// and no zombie; the health-failed event gives its last line of output.
// Not parallel: the probe's child, orphaned by the kill, is reaped by the
// supervisor as paddock reaps every child (startReapingAll).
//
// The probe must have started, forked its child and printed its line
// before the timeout kills it, and a loaded machine can take longer than
// any one timeout to start the probe: when the event shows it was killed
// before that (no stamp or no line), the test runs again with a timeout
// four times as long, so no slow start fails it and every pass checks
// the whole of the promise.
func TestExecProbeTimeoutKillsItsGroup(t *testing.T) {
	for timeout := 500 * time.Millisecond; ; timeout *= 4 {
		if probeTimeoutKillsItsGroup(t, timeout) {
			return
		}
		if timeout > time.Minute {
			t.Fatalf("no probe started within %s", timeout)
		}
		t.Logf("the probe had not started its child and printed its line within %s: again with %s", timeout, 4*timeout)
	}
}

// probeTimeoutKillsItsGroup runs TestExecProbeTimeoutKillsItsGroup's
// case with a probe timeout; false when the probe was killed before it
// had started.
func probeTimeoutKillsItsGroup(t *testing.T, timeout time.Duration) bool {
	dir := t.TempDir()
	h := startReapingAll(t, fmt.Sprintf(`
apps:
  web:
    exec: $SELF
    healthCheck:
      exec: [$SELF, "probe:hang"]
      interval: 1h
      timeout: %s
      failureThreshold: 1
    env: {PADDOCK_TEST_HELPER: serve, STAMP_DIR: %s}
`, timeout, dir))
	defer h.stop()
	e := h.waitEvent("health-failed", isType(EventHealthFailed))
	if !strings.Contains(e.Detail, "no exit within the timeout, killed") {
		t.Fatalf("health-failed detail %q, want a timeout", e.Detail)
	}
	stamps, err := filepath.Glob(filepath.Join(dir, "hang-probe.*"))
	if err != nil || len(stamps) > 1 {
		t.Fatalf("hang probes %v (%v), want at most 1", stamps, err)
	}
	if c := h.healthCounts("web"); c.Timeout != 1 || c.Pass+c.Fail != 0 {
		t.Errorf("probes %+v, want 1 timeout", c)
	}
	if len(stamps) == 0 || !strings.Contains(e.Detail, "killed: checking the database, please wait") {
		return false
	}
	b, err := os.ReadFile(stamps[0])
	if err != nil {
		t.Fatal(err)
	}
	var probe, child int
	if _, err := fmt.Sscan(string(b), &probe, &child); err != nil {
		t.Fatalf("stamp %q: %v", b, err)
	}
	waitGone(t, probe, "the timed-out probe")
	waitGone(t, child, "the timed-out probe's child")
	return true
}

// TestExecProbeOutputIsBounded: a probe that writes a mebibyte is read to
// its end (it never blocks on a full pipe) and its answer is its exit code
// and last line alone.
func TestExecProbeOutputIsBounded(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    healthCheck:
      exec: [$SELF, "probe:noisy"]
      interval: 1h
      timeout: 60s
      failureThreshold: 1
    env: {PADDOCK_TEST_HELPER: serve}
`)
	e := h.waitEvent("health-failed", isType(EventHealthFailed))
	if !strings.HasSuffix(e.Detail, ": exit code 3: the last words") || len(e.Detail) > 400 {
		t.Errorf("health-failed detail %q, want the exit code and the last line alone", e.Detail)
	}
}

// TestReadinessHTTPGatesRollout: with readiness http a worker is ready at
// its first passing probe; a new version whose health path fails never
// becomes ready, the rolling update stalls, and the old workers keep
// serving, untouched.
func TestReadinessHTTPGatesRollout(t *testing.T) {
	t.Parallel()
	const app = `
apps:
  web:
    exec: $SELF
    instances: 2
    schedulingPolicy: none
    listen: ["127.0.0.1:0"]
    readiness: http
    readyTimeout: 2s
    minReadyTime: 0s
    killTimeout: 60s
    healthCheck:
      http: {path: /healthz, port: worker}
      interval: 100ms
      timeout: 30s
    env: {PADDOCK_TEST_HELPER: health, HEALTHY_IDS: %s, VERSION: "%d"}
`
	h := start(t, fmt.Sprintf(app, "all", 1))
	old := h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
		return len(ws) == 2 && ws[0].Ready && ws[1].Ready
	})
	for range 2 {
		h.waitEvent("ready", isType(EventReady))
	}
	if c := h.healthCounts("web"); c.Pass < 2 {
		t.Errorf("workers ready after %d passing probes, want one each at least", c.Pass)
	}
	h.apply(fmt.Sprintf(app, "none", 2))
	stalled := h.waitEvent("rollout-stalled", isType(EventRolloutStalled))
	if !strings.Contains(stalled.Detail, "not ready within its readyTimeout") {
		t.Errorf("stalled: %q", stalled.Detail)
	}
	h.waitHealth("web", "failed probes of the new worker", func(c HealthCounts) bool { return c.Fail >= 3 })
	ws := h.waitWorkers("the state", func([]WorkerInfo) bool { return true })
	for _, o := range old {
		if w := liveWorker(t, ws, o.ID); w.PID != o.PID || !w.Ready {
			t.Errorf("old worker %d: %+v, was %+v", o.ID, w, o)
		}
	}
	for _, e := range h.drain() {
		if e.Type == EventReady && !slices.ContainsFunc(old, func(w WorkerInfo) bool { return w.ID == e.Worker }) {
			t.Errorf("a worker whose health path fails became ready: %s", describe([]Event{e}))
		}
		if e.Type == EventStopping || e.Type == EventHealthFailed {
			t.Errorf("unexpected: %s", describe([]Event{e}))
		}
	}
}

// TestHangingProbeDoesNotBlockTheOwner: while a probe waits on a worker
// that accepted it and never answers, the supervisor answers status
// requests: the probe's timeout (as long as the tests' patience) has not
// passed when they are answered.
func TestHangingProbeDoesNotBlockTheOwner(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    schedulingPolicy: none
    listen: ["127.0.0.1:0"]
    healthCheck:
      http: {path: /healthz, port: worker}
      interval: 1h
      timeout: 1h
    env: {PADDOCK_TEST_HELPER: health, HEALTH_HANG: "1", HEALTHY_IDS: all, STAMP_DIR: $DIR}
`)
	ws := h.waitWorkers("2 workers", running("web", 2))
	for _, w := range ws {
		testkit.WaitFor(t, fmt.Sprintf("worker %d to take a probe", w.ID), func() bool {
			_, err := os.Stat(filepath.Join(h.dir, "hang."+strconv.Itoa(w.ID)))
			return err == nil
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for range 20 {
		if _, err := h.sup.Status(ctx); err != nil {
			t.Fatalf("status while probes hang: %v", err)
		}
		if _, err := h.sup.Workers(ctx); err != nil {
			t.Fatalf("workers while probes hang: %v", err)
		}
	}
	if c := h.healthCounts("web"); c != (HealthCounts{}) {
		t.Fatalf("probes %+v: the hanging probes ended", c)
	}
}

// TestStoppedWorkerIsNoLongerProbed: a worker being stopped (scaled away)
// leaves the prober at once, while it still runs; only live workers are
// probed.
func TestStoppedWorkerIsNoLongerProbed(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 3
    schedulingPolicy: none
    listen: ["127.0.0.1:0"]
    killTimeout: 1h
    healthCheck:
      http: {path: /healthz, port: worker}
      interval: 100ms
      timeout: 30s
    env: {PADDOCK_TEST_HELPER: health, HEALTHY_IDS: all, HEALTH_IGNORE_TERM: "1"}
`)
	h.waitWorkers("3 workers", running("web", 3))
	h.waitHealth("web", "probes", func(c HealthCounts) bool { return c.Pass >= 3 })
	if _, err := h.sup.Scale(context.Background(), "web", 1); err != nil {
		t.Fatal(err)
	}
	// The two stopping workers ignore SIGTERM: they run on, and must not
	// be probed.
	ws := h.waitWorkers("2 workers stopping", func(ws []WorkerInfo) bool {
		n := 0
		for _, w := range ws {
			if w.Phase == reconcile.Stopping && w.PID != 0 {
				n++
			}
		}
		return n == 2
	})
	var probed []int
	if err := h.sup.do(context.Background(), func(o *owner) {
		o.prober.mu.Lock()
		defer o.prober.mu.Unlock()
		for id := range o.prober.targets {
			probed = append(probed, id)
		}
	}); err != nil {
		t.Fatal(err)
	}
	var live []int
	for _, w := range ws {
		if w.Phase == reconcile.Running {
			live = append(live, w.ID)
		}
	}
	slices.Sort(probed)
	if !slices.Equal(probed, live) {
		t.Errorf("probed workers %v, want only the live one, %v", probed, live)
	}
	// Every worker ignores SIGTERM: SIGKILL them all, and end.
	h.sup.Kill()
	h.done <- <-h.done
}

// checkHealthSocket checks that descriptor fd of process pid is its
// health socket: PADDOCK_HEALTH_FD names it, it is a TCP socket listening
// on PADDOCK_HEALTH_ADDR, on 127.0.0.1, and LISTEN_FDS does not count it.
func checkHealthSocket(t *testing.T, pid, fd int) {
	t.Helper()
	env := environ(t, pid)
	if env[HealthFDEnv] != strconv.Itoa(fd) {
		t.Errorf("pid %d: %s=%q, want %d", pid, HealthFDEnv, env[HealthFDEnv], fd)
	}
	if n, _ := strconv.Atoi(env["LISTEN_FDS"]); n >= fd-2 {
		t.Errorf("pid %d: LISTEN_FDS=%s counts its health socket (descriptor %d)", pid, env["LISTEN_FDS"], fd)
	}
	host, _, err := net.SplitHostPort(env[HealthAddrEnv])
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("pid %d: %s=%q", pid, HealthAddrEnv, env[HealthAddrEnv])
	}
	// The worker's descriptor is paddock's socket: it answers connections
	// at that address (the backlog takes them while nobody accepts).
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil || !strings.HasPrefix(target, "socket:") {
		t.Fatalf("pid %d descriptor %d is %q (%v), want a socket", pid, fd, target, err)
	}
	c, err := net.Dial("tcp", env[HealthAddrEnv])
	if err != nil {
		t.Fatalf("connect to %s: %v", env[HealthAddrEnv], err)
	}
	c.Close()
}

// TestHealthSocketAfterTheChannel: a worker's health socket is its last
// descriptor, after its listen: sockets (LISTEN_FDS counts those alone)
// and its IPC channel, whose numbers do not change.
func TestHealthSocketAfterTheChannel(t *testing.T) {
	t.Parallel()
	sock3, channel, health := os.NewFile(100, "sock3"), os.NewFile(101, "channel"), os.NewFile(102, "health")
	app := &manifest.App{Name: "web", Readiness: manifest.ReadinessOnline,
		Resolved: manifest.Resolved{Path: "/usr/bin/node", Argv: []string{"node", "app.js"}, Dir: "/srv/web"}}
	spec := workerSpec(app, 7, []string{"PATH=/bin", HealthFDEnv + "=9", WorkerPIDEnv + "=1"}, "", []specSocket{{File: sock3, Name: "web[0]"}}, channel)
	if fd := withHealthSocket(&spec, health, "127.0.0.1:4000"); fd != 5 {
		t.Errorf("health socket at descriptor %d, want 5", fd)
	}
	if !slices.Equal(spec.ExtraFiles, []*os.File{sock3, channel, health}) || !slices.Equal(spec.ListenNames, []string{"web[0]"}) {
		t.Errorf("files %v named %q", spec.ExtraFiles, spec.ListenNames)
	}
	want := []string{"PATH=/bin", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7",
		"NODE_CHANNEL_FD=4", "NODE_CHANNEL_SERIALIZATION_MODE=json", "NODE_UNIQUE_ID=7",
		"PADDOCK_HEALTH_FD=5", "PADDOCK_HEALTH_ADDR=127.0.0.1:4000"}
	if !slices.Equal(spec.Env, want) {
		t.Errorf("env\n got %q\nwant %q (paddock's variables are never inherited)", spec.Env, want)
	}
}

// TestScaleRefusedForAFixedProbePort: an app whose health check probes a
// port its one worker binds itself cannot be scaled above one worker: the
// probe would reach whichever worker holds the port.
func TestScaleRefusedForAFixedProbePort(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    healthCheck:
      http: {port: 1}
      startPeriod: 1h
    env: {PADDOCK_TEST_HELPER: serve}
`)
	h.waitWorkers("1 worker", running("web", 1))
	if _, err := h.sup.Scale(context.Background(), "web", 2); !errors.Is(err, ErrProbeNeedsOneWorker) {
		t.Errorf("scale to 2: %v, want ErrProbeNeedsOneWorker", err)
	}
	if _, err := h.sup.Scale(context.Background(), "web", 0); err != nil {
		t.Errorf("scale to 0: %v", err)
	}
}

// TestProbeReconnectsWhenTheWorkerClosedTheConnection: an HTTP probe keeps
// its connection for the next probe; a worker that closes idle
// connections sooner than the interval (Node's keepAliveTimeout is 5s)
// fails no probe: the next one finds the connection closed and opens a
// new one. The same under rr, where the new connection is handed over.
func TestProbeReconnectsWhenTheWorkerClosedTheConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, app string }{
		{"port-worker", "schedulingPolicy: none\n    ipc: off\n    listen: [\"127.0.0.1:0\"]\n    healthCheck:\n      http: {path: /healthz, port: worker}"},
		{"rr", "schedulingPolicy: rr\n    ipc: node\n    readiness: listening\n    listen: [\"127.0.0.1:%[1]d\"]\n    healthCheck:\n      http: {path: /healthz}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			app := tc.app
			if tc.name == "rr" {
				app = fmt.Sprintf(app, port)
			}
			h := start(t, fmt.Sprintf(`
apps:
  web:
    exec: $SELF
    killTimeout: 60s
    %s
      interval: 300ms
      timeout: 30s
      failureThreshold: 1
    env: {PADDOCK_TEST_HELPER: health, HEALTHY_IDS: all, HEALTH_IDLE_TIMEOUT: 20ms, PORT: "%d"}
`, app, port))
			// Failures before the worker is ready (under rr, before
			// it listens) do not count; any after would replace it.
			h.waitHealth("web", "10 passes", func(c HealthCounts) bool {
				for _, e := range h.drain() {
					if e.Type == EventHealthFailed {
						t.Fatalf("a probe failed: %s", describe([]Event{e}))
					}
				}
				return c.Pass >= 10
			})
		})
	}
}
