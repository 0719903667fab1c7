package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// chatty is a silent app whose worker writes a line every 20 ms, so that
// paddock writes to its own stdout all the time.
const chatty = `
apps:
  chatty:
    exec: /bin/sh
    args: ["-c", "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.02; done"]
    silent: true
`

// TestBrokenOutputDoesNotStopSupervision: when the reader of paddock's
// stdout, or of both its stdout and stderr, goes away, paddock keeps
// supervising (the worker keeps its pid), counts the lost lines and
// reports them; also when started with SIGPIPE ignored, as systemd does.
func TestBrokenOutputDoesNotStopSupervision(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		ignoreSIGPIPE bool // start paddock with SIGPIPE ignored
		breakStderr   bool // stderr goes to the same broken pipe
	}{
		{"stdout", false, false},
		{"sigpipe-ignored", true, false},
		{"both", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			manifest := writeManifest(t, chatty)
			sock := socketPath(t)
			cmd, r, exited := startBrokenOutput(t, manifest, sock, tc.ignoreSIGPIPE, tc.breakStderr)
			testkit.WaitFor(t, "the control socket and a count of lost lines", func() bool {
				_, _, code := cli(t, sock, "status")
				return code == 0 && statusOf(t, sock).LostOutput["stdout"] > 2
			})
			st := statusOf(t, sock)
			if len(st.Workers) != 1 || st.Workers[0].Restarts != 0 || st.Workers[0].PID == 0 {
				t.Fatalf("the worker did not keep running as it was: %+v", st.Workers)
			}
			if table := mustCLI(t, sock, "status"); !regexp.MustCompile(`\npaddock's stdout: \d+ lines of the workers' output lost since paddock started`).MatchString(table) {
				t.Errorf("status does not say that output was lost:\n%s", table)
			}
			pid := st.Workers[0].PID
			// Supervision goes on: a worker killed now is replaced.
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, "a replacement worker", func() bool {
				ws := statusOf(t, sock).Workers
				return len(ws) == 1 && ws[0].PID != 0 && ws[0].PID != pid
			})
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if r == nil {
				if err := <-exited; err != nil {
					t.Errorf("paddock ended with %v after its output broke, want exit 0", err)
				}
				return
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d after the stdout reader left, want 0", code)
			}
			// The log is read whole once paddock exited.
			if !r.logged("output-lost") {
				t.Error("no output-lost event was logged")
			}
		})
	}
}

// startBrokenOutput runs paddock over manifest on sock, with its stdout
// (and its stderr too, with breakStderr) on a pipe whose reader goes away
// after the worker's first line; with ignoreSIGPIPE paddock starts with
// SIGPIPE ignored. It returns paddock's command and either the running
// paddock, its log read from stderr, or (breakStderr) a channel that gets
// its exit.
func startBrokenOutput(t *testing.T, manifest, sock string, ignoreSIGPIPE, breakStderr bool) (cmd *exec.Cmd, r *running, exited chan error) {
	t.Helper()
	args := []string{paddockBin, "run", "--log-format", "json", "--socket", sock, manifest}
	if ignoreSIGPIPE {
		// The shell sets SIGPIPE to ignored and execs paddock,
		// which inherits the disposition.
		args = append([]string{"/bin/sh", "-c", `trap "" PIPE; exec "$@"`, "sh"}, args...)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), control.SocketEnv+"="+sock)
	cmd.Stdout = pw
	if breakStderr {
		cmd.Stderr = pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	} else {
		r = startPaddockCmd(t, cmd)
	}
	pw.Close()
	// Read up to the first line of the worker, then go away.
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if r != nil {
				r.wait()
			}
			t.Fatalf("paddock's output ended before the worker's first line: %v", err)
		}
		if strings.HasPrefix(line, "chatty/") {
			break
		}
	}
	pr.Close()
	return cmd, r, exited
}
