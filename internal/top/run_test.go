package top

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// fakeSupervisor serves the part of the control API that Run reads on a
// Unix socket: the status, and an events stream whose first connection
// ends after one event (as a connection cut would) and whose next ones
// send one event and stay open. The real supervisor never cuts a stream
// while it runs, so this is how that path is reached; the end-to-end tests
// in cmd/paddock run top against a real one.
type fakeSupervisor struct {
	path    string
	srv     *http.Server
	streams atomic.Int32
}

func startFakeSupervisor(t *testing.T) *fakeSupervisor {
	t.Helper()
	f := &fakeSupervisor{path: filepath.Join(t.TempDir(), "control.sock")}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(fixture(0))
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		n := f.streams.Add(1)
		e := control.Event{Time: t0, Type: "fork", App: "web", Worker: int(n), PID: 1000 + int(n)}
		_ = json.NewEncoder(w).Encode(e)
		w.(http.Flusher).Flush()
		if n > 1 {
			<-r.Context().Done()
		}
	})
	f.srv = &http.Server{Handler: mux}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(func() { _ = f.srv.Close() })
	return f
}

// runTop runs Run against f, with keys read from a pipe and the screen
// written to a buffer; it returns the pipe's writing end, the screen, and
// a channel that gets Run's result.
func runTop(t *testing.T, f *fakeSupervisor) (*os.File, *testkit.Buffer, chan error) {
	t.Helper()
	in, keys, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); keys.Close() })
	c := control.NewClient(f.path)
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	screen := &testkit.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), c, st, Options{Interval: time.Hour, Location: time.UTC, Input: in, Output: screen})
	}()
	return keys, screen, done
}

func waitRun(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(testkit.Patience):
		t.Fatal("Run did not return")
		return nil
	}
}

// TestRunEventsQuit: Run shows the events as they come, opens the stream
// again when it ends while the supervisor still answers (saying that
// events may have been missed), and returns nil on q.
func TestRunEventsQuit(t *testing.T) {
	f := startFakeSupervisor(t)
	keys, screen, done := runTop(t, f)
	screen.WaitFor(t, "fork web/1 pid=1001")
	screen.WaitFor(t, "events-lost the events stream ended; opened again")
	screen.WaitFor(t, "fork web/2 pid=1002")
	if _, err := keys.WriteString("q"); err != nil {
		t.Fatal(err)
	}
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run after q: %v", err)
	}
}

// TestRunSupervisorStops: when the supervisor goes away (its socket
// closed), Run returns ErrStopped.
func TestRunSupervisorStops(t *testing.T) {
	f := startFakeSupervisor(t)
	_, screen, done := runTop(t, f)
	screen.WaitFor(t, "fork web/2 pid=1002")
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitRun(t, done); !errors.Is(err, ErrStopped) {
		t.Errorf("Run after the supervisor went away: %v, want ErrStopped", err)
	}
}
