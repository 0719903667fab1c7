package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
		err  bool
	}{
		{"HUP", syscall.SIGHUP, false},
		{"SIGHUP", syscall.SIGHUP, false},
		{"hup", syscall.SIGHUP, false},
		{" usr2 ", syscall.SIGUSR2, false},
		{"9", syscall.SIGKILL, false},
		{"0", 0, true},
		{"65", 0, true},
		{"NOPE", 0, true},
		{"", 0, true},
	} {
		got, err := ParseSignal(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, error %t", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestSocketPath(t *testing.T) {
	t.Setenv(SocketEnv, "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := SocketPath(""); got != "/run/user/1000/paddock.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := fmt.Sprintf("/tmp/paddock-%d.sock", os.Getuid())
	if os.Getuid() == 0 {
		want = "/run/paddock.sock"
	}
	if got := SocketPath(""); got != want {
		t.Errorf("default: %s, want %s", got, want)
	}
	t.Setenv(SocketEnv, "/x/env.sock")
	if got := SocketPath(""); got != "/x/env.sock" {
		t.Errorf("with $%s: %s", SocketEnv, got)
	}
	if got := SocketPath("/x/flag.sock"); got != "/x/flag.sock" {
		t.Errorf("with the flag: %s", got)
	}
}

// TestListenTwiceAtOnce starts many listeners on one path at the same
// time: exactly one wins, the others get ErrInUse (or find the winner's
// socket being created), and none replaces the winner's socket.
func TestListenTwiceAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	const n = 8
	var wg sync.WaitGroup
	lns := make([]net.Listener, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { lns[i], errs[i] = Listen(path, slog.New(slog.DiscardHandler)) })
	}
	wg.Wait()
	won := 0
	var winner net.Listener
	for i := range n {
		if errs[i] == nil {
			won++
			winner = lns[i]
		}
	}
	if won != 1 {
		t.Fatalf("%d listeners won, want 1: %v", won, errs)
	}
	defer winner.Close()
	go func() {
		for {
			c, err := winner.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(path, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen on a live socket: %v, want ErrInUse", err)
	}
}

// lastServer is the Server of the last startSupervisor.
var lastServer *Server

// startSupervisor runs a supervisor of manifest content with the control
// API on a socket in a temporary directory, until the test ends.
func startSupervisor(tb testing.TB, content string) (*Client, *supervisor.Supervisor) {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "paddock.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	set, err := manifest.Load([]string{path}, manifest.CurrentHost())
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	hub := NewHub()
	sup := supervisor.New(supervisor.Options{Logger: logger, OnEvent: hub.Publish})
	sock := filepath.Join(dir, "c.sock")
	ln, err := Listen(sock, logger)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &Server{Supervisor: sup, Events: hub, Logs: logbuf.New(0, 0, 0), Logger: logger,
		Load:      func(p []string) (*manifest.Set, error) { return manifest.Load(p, manifest.CurrentHost()) },
		Manifests: []string{path}, Stop: func() {}}
	lastServer = srv
	go srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, set) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			sup.Kill()
			<-done
		}
		srv.Close()
	})
	return NewClient(sock), sup
}

func TestUnknownEndpointAndBadBodies(t *testing.T) {
	c, _ := startSupervisor(t, "apps:\n  web:\n    exec: /bin/sleep\n    args: [1000]\n")
	ctx := context.Background()
	var apiErr *APIError
	if err := c.Do(ctx, "GET", "/v2/status", nil, nil); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("GET /v2/status: %v", err)
	}
	if err := c.Do(ctx, "POST", "/v1/apps/web/scale", map[string]any{"instance": 3}, nil); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("scale with a misspelt field: %v", err)
	}
	if err := c.Do(ctx, "POST", "/v1/apps/web/scale", map[string]any{"instances": 20000}, nil); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("scale beyond the maximum: %v", err)
	}
	if err := c.Do(ctx, "POST", "/v1/apps/nope/restart", nil, nil); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("restart of an unknown app: %v", err)
	}
	if err := c.Do(ctx, "POST", "/v1/apps/web/send", SendRequest{Message: []byte(`1`)}, nil); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("send to a worker without a channel: %v", err)
	}
	if err := c.Do(ctx, "GET", "/v1/logs?lines=-1", nil, nil); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("logs with negative lines: %v", err)
	}
}

// BenchmarkStatus1000Workers measures GET /v1/status, decoded, through the
// real socket, with 1000 live workers (the bound: 50 ms).
func BenchmarkStatus1000Workers(b *testing.B) {
	c, _ := startSupervisor(b, `
apps:
  a:
    exec: /bin/sleep
    args: [1000]
    instances: 500
  b:
    exec: /bin/sleep
    args: [1000]
    instances: 500
`)
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := c.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		live := 0
		for _, w := range st.Workers {
			if w.PID != 0 {
				live++
			}
		}
		if live == 1000 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of 1000 workers running", live)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		st, err := c.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Workers) != 1000 {
			b.Fatalf("%d workers in status", len(st.Workers))
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "ms-worst")
}

// TestListenRefusesBusySocket: a live control socket whose accept queue is
// full (connecting gets EAGAIN) is in use, not stale: it is neither
// replaced nor removed.
func TestListenRefusesBusySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	var queued []int
	defer func() {
		for _, c := range queued {
			syscall.Close(c)
		}
	}()
	for {
		c, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, c)
		err = syscall.Connect(c, &syscall.SockaddrUnix{Name: path})
		if err == syscall.EAGAIN {
			break
		}
		if err != nil || len(queued) > 100 {
			t.Fatalf("filling the backlog: connect #%d: %v", len(queued), err)
		}
	}
	var before syscall.Stat_t
	if err := syscall.Lstat(path, &before); err != nil {
		t.Fatal(err)
	}
	_, err = Listen(path, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Listen on a busy socket: %v, want ErrInUse naming %s", err, path)
	}
	var after syscall.Stat_t
	if err := syscall.Lstat(path, &after); err != nil || after.Ino != before.Ino {
		t.Fatalf("the busy socket was replaced or removed: %v", err)
	}
}
