package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestSendSignalLogs drives a Node worker: its IPC channel (process.send
// and 'message') is what `paddock send` talks to.
func TestSendSignalLogs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	sock := socketPath(t)
	ids := startEchoWorkers(t, sock)
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
	sawFollowed, followed := followLogs(t, sock, "web")
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
		t.Errorf("logs -f missed the message: %q", followed())
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
		_, body := httpGet(t, url)
		return body
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
	// Each live worker's memory and CPU time, read from /proc.
	for _, w := range ws {
		for _, name := range []string{"paddock_worker_resident_bytes", "paddock_worker_cpu_seconds_total"} {
			if re := regexp.MustCompile(fmt.Sprintf(`(?m)^%s\{app="web",worker="%d"\} [0-9.e+]+$`, name, w.ID)); !re.MatchString(body) {
				t.Errorf("metrics lack %s of worker %d", name, w.ID)
			}
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

// followLogs runs `paddock logs APP -f --lines 0` against sock until the
// test ends. saw reports whether what it printed so far holds want; lines
// returns it.
func followLogs(t *testing.T, sock, app string) (saw func(want string) bool, lines func() string) {
	t.Helper()
	// Flags after the argument, as operators type them.
	follow := exec.Command(paddockBin, "logs", app, "-f", "--lines", "0", "--socket", sock)
	var out testkit.Buffer
	follow.Stdout = &out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Signal(syscall.SIGTERM); follow.Wait() })
	return func(want string) bool { return strings.Contains(out.String(), want) }, out.String
}

// startEchoWorkers runs paddock on sock with two Node workers of app web
// that print the messages they get ("got <json>") and the SIGUSR2 they
// receive ("usr2 in <id>"), and returns their ids once they run.
func startEchoWorkers(t *testing.T, sock string) []int {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "echo.js")
	testkit.WriteFile(script, []byte(`
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
	return ids
}
