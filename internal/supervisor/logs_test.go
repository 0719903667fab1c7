package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// fileHas waits until path holds every line of want.
func fileHas(t *testing.T, path string, want ...string) string {
	t.Helper()
	var data string
	testkit.WaitFor(t, filepath.Base(path)+" holding "+strings.Join(want, ", "), func() bool {
		b, _ := os.ReadFile(path)
		data = string(b)
		for _, w := range want {
			if !strings.Contains(data, w+"\n") {
				return false
			}
		}
		return true
	})
	return data
}

// TestLogsFiles: with logs:, the lines of silent and non-silent workers
// also go to the file, prefixed "app/id | " (merged streams) or apart
// (separate), while paddock's own stdout is as without logs: (the
// non-silent app's lines as written, the silent one's prefixed).
func TestLogsFiles(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  loud:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: print, READY_DIR: $DIR}
    logs: {file: loud.log}
  quiet:
    exec: $SELF
    silent: true
    env: {PADDOCK_TEST_HELPER: print, READY_DIR: $DIR}
    logs: {file: logs/quiet.log, streams: separate}
`)
	ws := h.waitWorkers("2 workers", func(ws []WorkerInfo) bool {
		return len(ws) == 2 && ws[0].PID != 0 && ws[1].PID != 0 && ws[0].App != ws[1].App
	})
	h.waitReady(ws)
	id := map[string]int{}
	for _, w := range ws {
		id[w.App] = w.ID
	}
	fileHas(t, filepath.Join(h.dir, "loud.log"),
		fmt.Sprintf("loud/%d | hello from %d", id["loud"], id["loud"]),
		fmt.Sprintf("loud/%d | second line from %d", id["loud"], id["loud"]))
	fileHas(t, filepath.Join(h.dir, "logs", "quiet.log"),
		fmt.Sprintf("quiet/%d | hello from %d", id["quiet"], id["quiet"]))
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// The last line, without a newline, is written once the worker is
	// gone, with one.
	loud := fileHas(t, filepath.Join(h.dir, "loud.log"), fmt.Sprintf("loud/%d | complaint from %d", id["loud"], id["loud"]))
	if strings.Contains(loud, "quiet") {
		t.Errorf("loud.log has quiet's lines:\n%s", loud)
	}
	errs := fileHas(t, filepath.Join(h.dir, "logs", "quiet.stderr.log"), fmt.Sprintf("quiet/%d | complaint from %d", id["quiet"], id["quiet"]))
	if strings.Contains(errs, "hello") {
		t.Errorf("quiet.stderr.log has stdout's lines:\n%s", errs)
	}
	out := h.out.String()
	for _, want := range []string{
		fmt.Sprintf("\nhello from %d\n", id["loud"]), fmt.Sprintf("quiet/%d | hello from %d\n", id["quiet"], id["quiet"]),
	} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("paddock's output lacks %q:\n%s", want, out)
		}
	}
}

// TestLogsChangeAppliesLive: a changed logs: keeps the workers (same
// pids) and their next lines go to the new file, as JSON lines under
// LogFormat json with their pid; logs: removed, no file is written.
func TestLogsChangeAppliesLive(t *testing.T) {
	t.Parallel()
	h := startWith(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: echo-usr1, READY_DIR: $DIR}
    logs: {file: a.log}
`, func(_ *harness, o *Options) { o.LogFormat = logfile.FormatJSON })
	ws := h.waitWorkers("1 worker", running("web", 1))
	h.waitReady(ws)
	w := ws[0]
	usr1 := func() {
		t.Helper()
		if err := syscall.Kill(w.PID, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	}
	type jsonLine struct {
		Time   string `json:"time"`
		App    string `json:"app"`
		Worker int    `json:"worker"`
		PID    int    `json:"pid"`
		Stream string `json:"stream"`
		Line   string `json:"line"`
	}
	want := func(n int, stream string) jsonLine {
		text := fmt.Sprintf("usr1 %d from %d", n, w.ID)
		if stream == "stderr" {
			text = fmt.Sprintf("usr1 %d on stderr from %d", n, w.ID)
		}
		return jsonLine{App: "web", Worker: w.ID, PID: w.PID, Stream: stream, Line: text}
	}
	usr1()
	a := filepath.Join(h.dir, "a.log")
	testkit.WaitFor(t, "a.log with line 1 on both streams", func() bool {
		b, _ := os.ReadFile(a)
		return strings.Count(string(b), "usr1 1 ") == 2
	})
	h.apply(`
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: echo-usr1, READY_DIR: $DIR}
    logs: {file: b.log}
`)
	usr1()
	b := filepath.Join(h.dir, "b.log")
	testkit.WaitFor(t, "b.log with line 2 on both streams", func() bool {
		data, _ := os.ReadFile(b)
		return strings.Count(string(data), "usr1 2 ") == 2
	})
	st, err := h.sup.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Workers) != 1 || st.Workers[0].PID != w.PID {
		t.Fatalf("workers %+v after the logs change, want web/%d pid %d kept", st.Workers, w.ID, w.PID)
	}
	for path, n := range map[string]int{a: 1, b: 2} {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s has %d lines:\n%s", filepath.Base(path), len(lines), data)
		}
		got := map[jsonLine]bool{}
		for _, l := range lines {
			var v jsonLine
			if err := json.Unmarshal([]byte(l), &v); err != nil || v.Time == "" {
				t.Errorf("%s: %q: not a JSON line with a time (%v)", filepath.Base(path), l, err)
			}
			v.Time = ""
			got[v] = true
		}
		for _, stream := range []string{"stdout", "stderr"} {
			if !got[want(n, stream)] {
				t.Errorf("%s lacks %+v:\n%s", filepath.Base(path), want(n, stream), data)
			}
		}
	}
	h.apply(`
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: echo-usr1, READY_DIR: $DIR}
`)
	if files := h.sup.LogFiles().Files(); len(files) != 0 || h.sup.LogFiles().Has("web") {
		t.Errorf("log files %q after logs: was removed", files)
	}
}

// TestLogsDroppedEvents: a log file that cannot be written (/dev/full)
// gives log-dropped with the reason, the lines are counted in Status by
// app, and the worker's output still reaches paddock's stdout.
func TestLogsDroppedEvents(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: print, READY_DIR: $DIR}
    logs: {file: /dev/full}
`)
	e := h.waitEvent("log-dropped", isType(EventLogDropped))
	if e.App != "web" || !strings.Contains(e.Detail, "/dev/full") || !strings.Contains(e.Detail, "no space left on device") {
		t.Errorf("log-dropped %+v", e)
	}
	h.out.WaitFor(t, "second line from")
	testkit.WaitFor(t, "2 lines counted as dropped", func() bool {
		st, err := h.sup.Status(t.Context())
		return err == nil && st.LogDropped["web"] >= 2
	})
}
