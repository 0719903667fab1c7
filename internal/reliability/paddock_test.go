package reliability

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// supervisor is a paddock run under test: its process, control socket and
// the client of that socket.
type supervisor struct {
	t      *testing.T
	cmd    *exec.Cmd
	sock   string
	client *control.Client
	stderr testkit.Buffer
	done   chan struct{}
	err    error
}

// startPaddock runs `paddock run --log-format json ARGS...` with a control
// socket of its own and stdout to stdout (nil: discarded), and waits for
// its control socket. It is killed when the test ends.
func startPaddock(t *testing.T, stdout io.Writer, args ...string) *supervisor {
	t.Helper()
	s := &supervisor{t: t, sock: filepath.Join(t.TempDir(), "control.sock"), done: make(chan struct{})}
	s.cmd = exec.Command(paddockBin, append([]string{"run", "--log-format", "json", "--socket", s.sock}, args...)...)
	s.cmd.Env = append(os.Environ(), control.SocketEnv+"="+s.sock)
	s.cmd.Stdout, s.cmd.Stderr = stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("paddock's log:\n%s", s.stderr.String())
		}
	})
	s.client = control.NewClient(s.sock)
	testkit.WaitFor(t, "paddock's control socket", func() bool {
		select {
		case <-s.done:
			t.Fatalf("paddock exited: %v\n%s", s.err, s.stderr.String())
		default:
		}
		_, err := s.client.Status(t.Context())
		return err == nil
	})
	return s
}

func (s *supervisor) pid() int { return s.cmd.Process.Pid }

// status is GET /v1/status.
func (s *supervisor) status() control.StatusResponse {
	s.t.Helper()
	st, err := s.client.Status(s.t.Context())
	if err != nil {
		s.t.Fatalf("status: %v", err)
	}
	return *st
}

// cli runs a paddock client command against this supervisor and returns
// its combined output and exit code.
func (s *supervisor) cli(args ...string) (string, int) {
	s.t.Helper()
	cmd := exec.Command(paddockBin, append([]string{"--socket", s.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return string(out), 0
}

// pids returns the pids of app's running workers, by worker id.
func (s *supervisor) pids(app string) map[int]int {
	s.t.Helper()
	out := map[int]int{}
	for _, w := range s.status().Workers {
		if w.App == app && w.State == "running" && w.PID != 0 {
			out[w.ID] = w.PID
		}
	}
	return out
}

// waitRunning waits until app has n running workers and returns their pids.
func (s *supervisor) waitRunning(app string, n int) map[int]int {
	s.t.Helper()
	var pids map[int]int
	testkit.WaitFor(s.t, fmt.Sprintf("%d running workers of %s", n, app), func() bool {
		pids = s.pids(app)
		return len(pids) == n
	})
	return pids
}

// writeFile writes a manifest or other file of the test, so that no
// worker forked meanwhile holds it open (testkit.WriteFile).
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := testkit.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback TCP port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// procStat is what /proc/PID/stat says of a process: its state, parent,
// and CPU time in clock ticks (user + system).
type procStat struct {
	state byte
	ppid  int
	ticks int64
}

// readStat reads /proc/PID/stat; ok is false once the process is gone.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// After the command: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime.
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{state: f[0][0], ppid: ppid, ticks: ut + st}, true
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// rssKiB returns VmRSS of /proc/PID/status, in KiB.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// allPIDs returns every pid in /proc.
func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// withMarker returns the live (not zombie) processes whose environment
// holds the variable marker (NAME=VALUE): every process a worker of the
// test started inherits it.
func withMarker(marker string) []int {
	var out []int
	for _, pid := range allPIDs() {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00"+marker+"\x00")) {
			continue
		}
		if st, ok := readStat(pid); ok && st.state != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// zombieChildren counts the children of pid in state Z.
func zombieChildren(pid int) int {
	n := 0
	for _, p := range allPIDs() {
		if st, ok := readStat(p); ok && st.ppid == pid && st.state == 'Z' {
			n++
		}
	}
	return n
}

// metric returns the value of an unlabelled metric of paddock's
// /metrics at addr.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s at %s", name, addr)
	return 0
}

// kill sends sig to pid, failing the test when it cannot.
func kill(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}
