package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// lastExitOf returns app's LastExit in the supervisor's status, nil if none.
func (h *harness) lastExitOf(app string) *ExitInfo {
	h.t.Helper()
	st, err := h.sup.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range st.Apps {
		if a.Name == app {
			return a.LastExit
		}
	}
	h.t.Fatalf("no app %s in the status", app)
	return nil
}

// TestLastExitKeepsTheLastLines: a worker that is not silent writes 18
// lines on stdout and 2 on stderr and exits 3: paddock copies them to its
// own stdout and stderr as written, and the app's last exit says which
// worker, pid and generation exited, with code 3, and holds the 20 lines
// (each stream in its order; a long line cut). Another, which writes 30
// lines on stdout, has the last 20 lines paddock read kept.
func TestLastExitKeepsTheLastLines(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  talk:
    exec: $SELF
    restart: never
    env: {PADDOCK_TEST_HELPER: "last-words:18:3"}
  more:
    exec: $SELF
    restart: never
    env: {PADDOCK_TEST_HELPER: "last-words:30:0"}
`)
	fork := h.waitEvent("fork", func(e Event) bool { return e.Type == EventFork && e.App == "talk" })
	h.waitEvent("exit", func(e Event) bool { return e.Type == EventExit && e.App == "talk" })
	ex := h.waitLastExit("talk", func(ex *ExitInfo) bool { return len(ex.Lines) == TailLines })
	if ex.Worker != fork.Worker || ex.PID != fork.PID || ex.Generation != fork.Generation || ex.Code != 3 || ex.Signal != "" {
		t.Errorf("last exit %+v, want worker %d pid %d generation %s code 3", ex, fork.Worker, fork.PID, fork.Generation)
	}
	if ex.Uptime <= 0 || ex.At.IsZero() {
		t.Errorf("last exit at %v after %v", ex.At, ex.Uptime)
	}
	outs, errs := splitStreams(ex.Lines)
	if want := outLines(1, 18); !slices.Equal(outs, want) {
		t.Errorf("stdout lines kept %q, want %q", outs, want)
	}
	long := strings.Repeat("é", TailLineBytes/2) + "…"
	if wantErr := []string{long, fmt.Sprintf("last words %d", fork.Worker)}; !slices.Equal(errs, wantErr) {
		t.Errorf("stderr lines kept %q, want %q", errs, wantErr)
	}
	for _, l := range ex.Lines {
		if !utf8.ValidString(l) {
			t.Errorf("line %q is not valid UTF-8", l)
		}
	}

	// 32 lines: the last 20 read are kept, stdout's last ones among them.
	more := h.waitLastExit("more", func(ex *ExitInfo) bool { return slices.Contains(ex.Lines, "out 30") })
	outs, _ = splitStreams(more.Lines)
	if len(more.Lines) != TailLines || len(outs) < TailLines-2 || !slices.Equal(outs, outLines(31-len(outs), 30)) {
		t.Errorf("lines kept of 32: %q, want 20 with the last stdout ones in order", more.Lines)
	}

	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	out := "\n" + h.out.String()
	for _, l := range outLines(1, 18) {
		if !strings.Contains(out, "\n"+l+"\n") {
			t.Errorf("paddock's output lacks the line %q, unprefixed:\n%s", l, out)
		}
	}
	if !strings.Contains(out, "\n"+strings.Repeat("é", 2000)+"\n") {
		t.Errorf("paddock's output lacks the long line, whole")
	}
}

// waitLastExit waits until app has a last exit that cond accepts, and
// returns it.
func (h *harness) waitLastExit(app string, cond func(*ExitInfo) bool) *ExitInfo {
	h.t.Helper()
	var ex *ExitInfo
	for deadline := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
		if ex = h.lastExitOf(app); ex != nil && cond(ex) {
			return ex
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s's last exit: %+v", app, ex)
		}
	}
}

// splitStreams parts the lines of a last-words worker into its stdout
// lines and the others.
func splitStreams(lines []string) (outs, others []string) {
	for _, l := range lines {
		if strings.HasPrefix(l, "out ") {
			outs = append(outs, l)
		} else {
			others = append(others, l)
		}
	}
	return outs, others
}

// outLines returns "out from" ... "out to".
func outLines(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("out %d", i))
	}
	return out
}

// TestLastExitOfKilledWorker: a worker killed by a signal paddock did not
// send is recorded with code -1 and the signal's name; a worker paddock
// stops is not recorded.
func TestLastExitOfKilledWorker(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: $DIR}
`)
	ws := h.waitWorkers("2 workers", running("web", 2))
	h.waitReady(ws)
	if ex := h.lastExitOf("web"); ex != nil {
		t.Fatalf("a last exit before any: %+v", ex)
	}
	if err := syscall.Kill(ws[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("the exit", func(e Event) bool { return e.Type == EventExit && e.Worker == ws[0].ID })
	ex := h.lastExitOf("web")
	if ex == nil || ex.Worker != ws[0].ID || ex.PID != ws[0].PID || ex.Code != -1 || ex.Signal != "SIGKILL" {
		t.Fatalf("last exit %+v, want worker %d pid %d killed by SIGKILL", ex, ws[0].ID, ws[0].PID)
	}
	// A scale-down stops a worker: that exit was asked for.
	h.waitReady(h.waitWorkers("the replacement", running("web", 2)))
	if _, err := h.sup.Scale(context.Background(), "web", 1); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("the stopped worker's exit", func(e Event) bool { return e.Type == EventExit && e.Intended })
	if now := h.lastExitOf("web"); now == nil || now.Worker != ex.Worker {
		t.Errorf("last exit after a scale-down %+v, want still worker %d's", now, ex.Worker)
	}
}
