package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// The test binary doubles as a worker: with WORKER_TEST_HELPER set,
// TestMain runs it instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("WORKER_TEST_HELPER") {
	case "echo":
		echoWorker()
		return
	case "inherited":
		inheritedWorker()
		return
	case "health":
		healthWorker()
		return
	}
	os.Exit(m.Run())
}

// echoWorker answers every message from the supervisor with {"echo": it},
// and waits for SIGTERM once its channel ended.
func echoWorker() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	in := Messages()
	if in == nil {
		os.Exit(3)
	}
	for {
		select {
		case m := <-in:
			Send(map[string]json.RawMessage{"echo": m})
		case <-Disconnecting():
			<-term
			os.Exit(0)
		}
	}
}

// supervisorEnd starts the test binary as an echo worker on a channel and
// returns this test's end of the channel, which the test plays the
// supervisor on, and the worker's pid.
func supervisorEnd(t *testing.T) (*nodeipc.Conn, int) {
	t.Helper()
	conn, child, err := nodeipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WORKER_TEST_HELPER=echo", "NODE_CHANNEL_FD=3", "NODE_UNIQUE_ID=1")
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	t.Cleanup(func() {
		conn.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return conn, cmd.Process.Pid
}

// fdsOf counts the open descriptors of process pid.
func fdsOf(t *testing.T, pid int) int {
	t.Helper()
	fds, err := testkit.OpenFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestStrayDescriptorsCloseTheWorkersChannel: a supervisor that sends
// descriptors on lines that are not NODE_HANDLE messages cannot make a
// worker keep them: the worker closes them at once and closes its channel.
func TestStrayDescriptorsCloseTheWorkersChannel(t *testing.T) {
	conn, pid := supervisorEnd(t)
	lines := make(chan []byte, 1024)
	ended := make(chan error, 1)
	go func() {
		ended <- conn.ReadLines(func(l nodeipc.Line) error {
			if l.File != nil {
				l.File.Close()
			}
			lines <- bytes.Clone(l.Raw)
			return nil
		})
		close(lines)
	}()
	// The worker says it is online, then echoes: it reads its channel.
	if err := conn.WriteLine([]byte(`{"ping":1}`+"\n"), -1); err != nil {
		t.Fatal(err)
	}
	for echoed := false; !echoed; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the channel ended: %v", <-ended)
			}
			echoed = string(l) == `{"echo":{"ping":1}}`
		case <-time.After(30 * time.Second):
			t.Fatal("no echo from the worker")
		}
	}
	before := fdsOf(t, pid)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	sent := 0
	var sock int
	conn.Control(func(fd uintptr) { sock = int(fd) })
	for i := range 500 {
		line := []byte(`{"n":` + strconv.Itoa(i) + "}\n")
		if _, err := unix.SendmsgN(sock, line, unix.UnixRights(int(w.Fd())), nil, unix.MSG_NOSIGNAL); err != nil {
			break // the worker closed its end
		}
		sent++
	}
	// The worker must close the channel: this end reads to its end.
	deadline := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-lines:
		case <-deadline:
			t.Fatalf("the worker kept its channel open after %d stray descriptors; it holds %d descriptors, %d before",
				sent, fdsOf(t, pid), before)
		}
	}
	after := fdsOf(t, pid)
	t.Logf("%d lines with a descriptor sent: the worker held %d descriptors before, %d once its channel closed", sent, before, after)
	if after >= before {
		t.Errorf("the worker holds %d descriptors, %d before: the stray ones or its channel are still open", after, before)
	}
}

// healthWorker serves "ok" over HTTP on the worker's health socket
// (HealthListener) and exits 0 once one request was answered (without
// HEALTH_ACCEPT, it exits 8 once it has the socket); it exits 5 when it has
// no health socket, printing why.
func healthWorker() {
	l, err := HealthListener()
	if err != nil {
		fmt.Fprintln(os.Stdout, err)
		os.Exit(5)
	}
	if _, err := HealthListener(); err == nil {
		os.Exit(6) // taken once only
	}
	if os.Getenv("HEALTH_ACCEPT") == "" {
		os.Exit(8)
	}
	c, err := l.Accept()
	if err != nil {
		os.Exit(7)
	}
	c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"))
	c.Close()
	os.Exit(0)
}

// TestHealthListener: a worker takes its health socket from
// PADDOCK_HEALTH_FD when it is the socket PADDOCK_HEALTH_ADDR names, and
// serves it; a descriptor that is not that socket is left alone.
func TestHealthListener(t *testing.T) {
	f, addr := testkit.ListenerFile(t)
	t.Run("served", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "WORKER_TEST_HELPER=health", "HEALTH_ACCEPT=1", "PADDOCK_HEALTH_FD=3",
			"PADDOCK_HEALTH_ADDR="+addr.String())
		cmd.ExtraFiles = []*os.File{f}
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + addr.String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := cmd.Wait(); err != nil || string(body) != "ok\n" {
			t.Errorf("worker: %v, answer %q; output: %s", err, body, out.String())
		}
	})
	t.Run("another address", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "WORKER_TEST_HELPER=health", "PADDOCK_HEALTH_FD=3", "PADDOCK_HEALTH_ADDR=127.0.0.1:1")
		cmd.ExtraFiles = []*os.File{f}
		out, _ := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(string(out), ErrNoHealthSocket.Error()) {
			t.Errorf("exit %d, output %q; want 5 and %q", code, out, ErrNoHealthSocket)
		}
	})
	t.Run("outside paddock", func(t *testing.T) {
		t.Setenv("PADDOCK_HEALTH_FD", "")
		w := openWorker(t)
		defer w.Close()
		if _, err := w.HealthListener(); !errors.Is(err, ErrNoHealthSocket) {
			t.Errorf("HealthListener() = %v, want ErrNoHealthSocket", err)
		}
	})
}
