package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestCriticalAppFailedExitsThree: a critical app whose program exits 1 at
// once (backoff 10ms to 50ms, failAfter 1s) makes paddock log app-failed,
// stop every app gracefully, and exit 3; the healthy app beside it was
// stopped on purpose (its worker's exit is an intended one, after its
// killSignal), and no worker is left running. `critical: true` in the
// manifest, or --exit-on-failed for every app.
func TestCriticalAppFailedExitsThree(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"critical", "exit-on-failed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			critical := mode == "critical"
			path := writeManifest(t, fmt.Sprintf(`
apps:
  bad:
    exec: /bin/false
    backoff: {initial: 10ms, max: 50ms}
    critical: %v
    failAfter: 1s
  good:
    exec: /bin/sleep
    args: [3600]
`, critical))
			args := []string{"run", "--log-format", "json", path}
			if !critical {
				args = []string{"run", "--log-format", "json", "--exit-on-failed", path}
			}
			r := startPaddockArgs(t, args...)
			if code := r.wait(); code != exitAppFailed {
				t.Fatalf("exit code %d, want %d (a critical app failed)", code, exitAppFailed)
			}
			if !r.logged("crash-loop") || !r.logged("app-failed") {
				t.Fatal("no crash-loop or app-failed record in the log")
			}
			if d, _ := r.logValue("app-failed", "app"); d != "bad" {
				t.Errorf("app-failed names app %q, want bad", d)
			}
			good := r.find(func(m map[string]any) bool { return m["msg"] == "fork" && m["app"] == "good" })
			if good == nil {
				t.Fatal("good's worker was never forked")
			}
			pid := int(good["pid"].(float64))
			exit := r.find(func(m map[string]any) bool {
				return m["msg"] == "exit" && m["app"] == "good" && m["pid"] == good["pid"]
			})
			if exit == nil || exit["intended"] != true || exit["signal"] != "SIGTERM" {
				t.Errorf("good's worker (pid %d) exit record %v, want an intended exit by SIGTERM", pid, exit)
			}
			if failed, stopping := r.index("app-failed"), r.index("stopping"); stopping < failed {
				t.Errorf("a worker was stopped (log record %d) before app-failed (record %d)", stopping, failed)
			}
			if !dead(pid) {
				t.Errorf("good's worker, pid %d, outlived paddock", pid)
			}
		})
	}
}

// TestStatusShowsCrashLoop: `paddock status` says under a crash-looping
// app's row that it is, how fast its workers exit and how the last one
// ended, followed by the last lines it wrote (a worker that is not
// silent); status --json has it as crashLoop and lastExit. The worker
// exits 1 three times, then stays up: the crash loop goes on (not up for
// backoff.max, 1h, yet) and the last exit stays the third.
func TestStatusShowsCrashLoop(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	startWithSocket(t, sock, writeManifest(t, fmt.Sprintf(`
apps:
  flaky:
    exec: %s
    env: {PADDOCK_TEST_HELPER: crash, COUNTER: $DIR/runs}
    backoff: {initial: 10ms, max: 1h}
  steady:
    exec: /bin/sleep
    args: [3600]
`, selfPath(t))))
	const out, errLine = "connecting to the database", "fatal: the database refused the connection"
	// The last lines reach paddock through the worker's pipes, which may
	// be read after its exit is reaped: wait for both.
	testkit.WaitFor(t, "flaky to crash-loop, with its last lines", func() bool {
		a := appOf(t, statusOf(t, sock), "flaky")
		return a.CrashLoop != nil && a.LastExit != nil && slices.Contains(a.LastExit.Lines, out) &&
			slices.Contains(a.LastExit.Lines, errLine)
	})
	st := statusOfCLI(t, sock)
	cl := appOf(t, st, "flaky").CrashLoop
	if cl == nil || cl.Exits != 3 || cl.Window != "1m0s" || cl.LastExitCode != 1 || cl.LastSignal != "" || cl.FailAt != nil ||
		cl.Summary != "3 exits in 60s, last exit 1" {
		t.Fatalf("status --json crashLoop %+v, want 3 exits in 1m0s, last exit code 1, no failAt", cl)
	}
	if s := appOf(t, st, "steady"); s.CrashLoop != nil || s.Critical {
		t.Errorf("steady: crash loop %+v, critical %v", s.CrashLoop, s.Critical)
	}
	table := mustCLI(t, sock, "status")
	lines := strings.Split(table, "\n")
	row := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "flaky ") })
	if row < 0 || row+3 >= len(lines) || lines[row+1] != "  crash-loop: 3 exits in 60s, last exit 1" {
		t.Fatalf("status does not say under flaky's row that it crash-loops:\n%s", table)
	}
	// stdout and stderr are two pipes: their lines may come in either
	// order.
	if got := []string{lines[row+2], lines[row+3]}; !slices.Contains(got, "    | "+out) || !slices.Contains(got, "    | "+errLine) {
		t.Errorf("status does not show flaky's last lines under its crash-loop line:\n%s", table)
	}
}

// TestWriteStatusNotes: the notes of an app go under its row, indented,
// and leave the table's columns aligned.
func TestWriteStatusNotes(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	failAt := now.Add(4*time.Minute + 12*time.Second)
	st := &control.StatusResponse{Apps: []control.App{
		{Name: "api", Instances: 2, SchedulingPolicy: "rr", Generation: "aaaaaaaa", Critical: true,
			CrashLoop: &control.CrashLoop{Exits: 14, Window: "1m0s", LastExitCode: 1, FailAt: &failAt,
				Summary: "14 exits in 60s, last exit 1"},
			LastExit: &control.ExitInfo{Code: 1, Lines: []string{"1", "2", "3", "4", "5", "Error: connect ECONNREFUSED", "\x1b[2Jat\tconnect"}}},
		{Name: "web-frontend", Instances: 1, Ready: 1, SchedulingPolicy: "none", Generation: "bbbbbbbb"},
	}}
	// A last exit without a crash loop is not shown (web-frontend).
	st.Apps[1].LastExit = &control.ExitInfo{Code: 0, Lines: []string{"bye"}}
	var b strings.Builder
	writeStatus(&b, st, now)
	lines := strings.Split(b.String(), "\n")
	got := strings.Join(lines[:min(11, len(lines))], "\n")
	want := "APP           DESIRED  READY  CPU  MEM  POLICY  LISTEN  GENERATION  ROLLOUT  WAITING\n" +
		"api           2        0/2    -    -    rr      -       aaaaaaaa    -        -\n" +
		"  crash-loop: 14 exits in 60s, last exit 1\n" +
		"  critical: unless a worker stays up, paddock stops every app and exits in 4m12s\n" +
		"    | 3\n" +
		"    | 4\n" +
		"    | 5\n" +
		"    | Error: connect ECONNREFUSED\n" +
		"    | \uFFFD[2Jat\tconnect\n" +
		"web-frontend  1        1/1    -    -    none    -       bbbbbbbb    -        -\n"
	if got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
}
