package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

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
	testkit.WriteFile(ok, nil, 0o644)
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
