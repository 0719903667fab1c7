package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

// The test binary doubles as a control server and its clients, run as
// other users: with CONTROL_TEST_HELPER set, TestMain runs that instead of
// the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CONTROL_TEST_HELPER"); mode != "" {
		helper(mode, os.Getenv("CONTROL_TEST_SOCKET"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper runs one helper mode on the control socket at sock:
//
//	serve    a supervisor without apps and its control server, logging
//	         as JSON on stderr; prints "listening" once the socket is
//	         there, and stops when stdin is closed
//	status   GET /v1/status with Client; prints "served", or the error
//	raw      GET /v1/status on a bare connection, without the client's
//	         check of the server; prints "answered: <status line>", or
//	         "closed without answering"
func helper(mode, sock string) {
	switch mode {
	case "serve":
		logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		ln, err := Listen(sock, logger)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		hub := NewHub()
		sup := supervisor.New(supervisor.Options{Logger: logger, OnEvent: hub.Publish})
		srv := &Server{Supervisor: sup, Events: hub, Logs: logbuf.New(0, 0, 0), Logger: logger, Stop: func() {}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sup.Run(ctx, &manifest.Set{Apps: map[string]*manifest.App{}}) }()
		go srv.Serve(ln)
		fmt.Println("listening")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes it
		cancel()
		<-done
		srv.Close()
	case "status":
		var st map[string]any
		if err := NewClient(sock).Do(context.Background(), "GET", "/v1/status", nil, &st); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("served")
	case "raw":
		conn, err := net.Dial("unix", sock)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /v1/status HTTP/1.1\r\nHost: paddock\r\n\r\n"); err != nil {
			// The server may have closed it already.
			fmt.Println("closed without answering")
			return
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			fmt.Println("closed without answering")
			return
		}
		fmt.Println("answered:", strings.TrimSpace(line))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

// asUser returns a command that runs the test binary bin in helper mode on
// sock, as uid (and the same gid).
func asUser(bin string, uid int, mode, sock string) *exec.Cmd {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "CONTROL_TEST_HELPER="+mode, "CONTROL_TEST_SOCKET="+sock)
	return testkit.AsUser(cmd, uint32(uid))
}

// TestPeerCredentials: a control server run by a user that is not root
// (nobody, uid 65534) serves that user and root, and refuses any other
// user (uid 1000) by the connection's peer credentials (SO_PEERCRED),
// logging the refusal with the uid, even when the socket's mode lets that
// user connect. A client that is not root refuses a server of another
// user (ErrUntrustedServer). Server and clients are the test binary run as
// those users, which needs root.
func TestPeerCredentials(t *testing.T) {
	testkit.NeedRoot(t, "to run the control server and its clients as other users (nobody, uid 1000)")
	// The binary and the socket's directory must be reachable by the
	// other users; the directory is nobody's, who creates the socket.
	dir := testkit.PublicDir(t)
	bin := testkit.PublicCopy(t, dir)
	sockDir := filepath.Join(dir, "run")
	if err := os.Mkdir(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sockDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "control.sock")

	server := asUser(bin, 65534, "serve", sock)
	stdin, err := server.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	server.Stderr = logs
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := server.Wait(); err != nil {
			t.Errorf("server: %v\n%s", err, logs.String())
		}
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("server says %q (%v):\n%s", line, err, logs.String())
	}
	// The mode (0600) would keep uid 1000 out before its credentials are
	// looked at: let everyone connect.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}

	run := func(uid int, mode string) string {
		t.Helper()
		cmd := asUser(bin, uid, mode, sock)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s as uid %d: %v\n%s", mode, uid, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run(65534, "status"); got != "served" {
		t.Errorf("status as the server's own user: %s", got)
	}
	var st map[string]any
	if err := NewClient(sock).Do(context.Background(), "GET", "/v1/status", nil, &st); err != nil {
		t.Errorf("status as root: %v", err)
	}
	if got := run(1000, "raw"); got != "closed without answering" {
		t.Fatalf("a request of uid 1000 to nobody's server: %s", got)
	}
	// refused lists the uids of the refusals the server logged.
	refused := func() []float64 {
		var uids []float64
		for _, line := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), "control connection refused") {
				uid, _ := m["uid"].(float64)
				uids = append(uids, uid)
			}
		}
		return uids
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(refused()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal in the server's log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := refused(); !slices.Equal(got, []float64{1000}) {
		t.Errorf("the server refused uids %v, want 1000 only (as \"another user\"):\n%s", got, logs.String())
	}
	got := run(1000, "status")
	if !strings.Contains(got, ErrUntrustedServer.Error()) || !strings.Contains(got, "uid 65534") {
		t.Errorf("the client of uid 1000 against nobody's server: %s, want %q naming uid 65534", got, ErrUntrustedServer)
	}
}
