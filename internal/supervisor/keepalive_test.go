package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// keepAliveWorker answers "<pid>" and keeps idle connections open for ten
// minutes. Its primary branch (under Node only) forks two workers and, on
// SIGUSR2, disconnects them all and forks two new ones: a rolling restart
// in ten lines, the way a Node user retires workers.
const keepAliveWorker = `const cluster = require('node:cluster');
const http = require('node:http');
if (cluster.isPrimary) {
  const fork = () => { for (let i = 0; i < 2; i++) cluster.fork(); };
  fork();
  process.on('SIGUSR2', () => { for (const w of Object.values(cluster.workers)) w.disconnect(); fork(); });
} else {
  const srv = http.createServer((req, res) => res.end(String(process.pid)));
  srv.keepAliveTimeout = 600000;
  srv.listen(+process.env.PORT);
}
`

// TestIdleKeepAliveOnRetirement pins down what a retiring Node worker does
// to an idle keep-alive connection, under paddock and under Node's own
// primary alike: cluster's disconnect runs server.close(), which (Node 19
// and later) closes the worker's idle connections. The client sees the
// connection end (EOF) without a response pending; its next request, on a
// new connection, reaches a live worker. A request sent on the old
// connection at the very moment it is closed fails: that is HTTP
// keep-alive's own race, which clients settle by retrying on a new
// connection, and Node's primary has it too.
func TestIdleKeepAliveOnRetirement(t *testing.T) {
	t.Parallel()
	needNode(t)
	t.Run("paddock", func(t *testing.T) {
		port := freePort(t)
		h := startNode(t, keepAliveWorker, fmt.Sprintf(`
apps:
  web:
    exec: ./server.js
    instances: 2
    readiness: listening
    readyTimeout: 60s
    env: {PORT: "%d"}
`, port))
		h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
			return len(ws) == 2 && ws[0].Ready && ws[1].Ready
		})
		checkIdleConnectionClosed(t, port, func() {
			if _, err := h.sup.Restart(context.Background(), "web"); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("node", func(t *testing.T) {
		port := freePort(t)
		dir := t.TempDir()
		script := filepath.Join(dir, "server.js")
		if err := testkit.WriteFile(script, []byte(keepAliveWorker), 0o644); err != nil {
			t.Fatal(err)
		}
		primary := exec.Command("node", script)
		primary.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
		primary.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := primary.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-primary.Process.Pid, syscall.SIGKILL)
			_ = primary.Wait()
		})
		waitServing(t, port)
		checkIdleConnectionClosed(t, port, func() {
			if err := primary.Process.Signal(syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// waitServing waits until an HTTP request to port is answered.
func waitServing(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing serves port %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkIdleConnectionClosed makes one request on a keep-alive connection,
// retires every worker with retire, and checks that the server closes the
// idle connection and that a new connection is served by another worker.
func checkIdleConnectionClosed(t *testing.T, port int, retire func()) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() string {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := get()
	retire()
	// The deadline only bounds a failure: the worker closes the
	// connection when it retires.
	if err := c.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("the idle keep-alive connection to the retiring worker: read %d bytes, %v; want EOF", n, err)
	}
	var next string
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if next = string(b); next != first && !strings.Contains(next, "\n") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new worker answered a new connection (last: %q, %v)", next, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
