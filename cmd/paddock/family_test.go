package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// helper runs one behaviour of the test binary acting as a worker or one of
// its descendants (PADDOCK_TEST_HELPER):
//
//	family   the worker of the no-survivor tests: records its pid, starts
//	         two sleepers in its process group, two that call setsid, and a
//	         wrapper-style child, also in a session of its own, holding the
//	         listening socket (descriptor 3) it inherited, as a shell's
//	         server does; then blocks
//	sleeper  records its pid and blocks
//	holder   records its pid and blocks, holding descriptor 3
//
// Each records its pid as /proc/self names it (the pid outside a PID
// namespace of paddock's own) on a line of $PIDFILE. Other workers:
//
//	stubborn  ignores SIGTERM, then creates $READY and blocks
//	ready-if  if $OK exists, sends READY=1 to $NOTIFY_SOCKET and blocks;
//	          else exits 1 at once
func helper(mode string) {
	recordPID := func() {
		self, err := os.Readlink("/proc/self")
		if err != nil {
			os.Exit(20)
		}
		f, err := os.OpenFile(os.Getenv("PIDFILE"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			os.Exit(21)
		}
		if _, err := f.WriteString(self + "\n"); err != nil {
			os.Exit(22)
		}
		f.Close()
	}
	switch mode {
	case "family":
		recordPID()
		spawn := func(mode string, setsid bool, extra ...*os.File) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "PADDOCK_TEST_HELPER="+mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
			cmd.ExtraFiles = extra
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(23)
			}
		}
		spawn("sleeper", false)
		spawn("sleeper", false)
		spawn("sleeper", true)
		spawn("sleeper", true)
		spawn("holder", true, os.NewFile(3, "listen"))
		select {}
	case "sleeper", "holder":
		recordPID()
		select {}
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		if err := testkit.WriteFile(os.Getenv("READY"), nil, 0o644); err != nil {
			os.Exit(24)
		}
		select {}
	case "ready-if":
		if _, err := os.Stat(os.Getenv("OK")); err != nil {
			os.Exit(1)
		}
		if sent, err := notify.Send("READY=1"); !sent || err != nil {
			fmt.Fprintln(os.Stderr, "notify:", sent, err)
			os.Exit(25)
		}
		select {}
	case "crash":
		// A program that cannot stay up, and says why first: the first
		// 3 times it runs (it counts them in $COUNTER); then it stays.
		f, err := os.OpenFile(os.Getenv("COUNTER"), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			os.Exit(26)
		}
		data, _ := io.ReadAll(f)
		if _, err := f.WriteString("run\n"); err != nil {
			os.Exit(27)
		}
		f.Close()
		if bytes.Count(data, []byte("\n")) >= 3 {
			select {}
		}
		fmt.Println("connecting to the database")
		fmt.Fprintln(os.Stderr, "fatal: the database refused the connection")
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

// familyProcs is how many processes a family worker makes, itself included.
const familyProcs = 6

// procStart returns the start time of pid (field 22 of /proc/PID/stat) and
// whether it runs (exists and is not a zombie).
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return 0, false
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v, true
}

// family is a family worker's processes: pid → start time.
type family map[int]uint64

// readFamily waits until the family worker(s) recorded n pids in pidfile.
func readFamily(t *testing.T, pidfile string, n int) family {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		b, _ := os.ReadFile(pidfile)
		lines := strings.Fields(string(b))
		if len(lines) >= n {
			fam := family{}
			for _, l := range lines {
				pid, err := strconv.Atoi(l)
				if err != nil {
					t.Fatalf("bad pid %q in %s", l, pidfile)
				}
				st, ok := procStart(pid)
				if !ok {
					t.Fatalf("pid %d recorded but not running", pid)
				}
				fam[pid] = st
			}
			return fam
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d pids recorded in %s", len(lines), n, pidfile)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// survivors lists the family's processes still running.
func (f family) survivors() []int {
	var out []int
	for pid, st := range f {
		if now, ok := procStart(pid); ok && now == st {
			out = append(out, pid)
		}
	}
	return out
}

// waitNoSurvivors polls, with a deadline that only bounds a failure, until
// none of the family runs.
func (f family) waitNoSurvivors(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		left := f.survivors()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var desc []string
			for _, pid := range left {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
				helperMode := ""
				for _, kv := range strings.Split(string(cmdline), "\x00") {
					if strings.HasPrefix(kv, "PADDOCK_TEST_HELPER=") {
						helperMode = kv
					}
				}
				sid, _ := unix.Getsid(pid)
				pgid, _ := syscall.Getpgid(pid)
				desc = append(desc, fmt.Sprintf("pid %d (%s, pgid %d, sid %d)", pid, helperMode, pgid, sid))
			}
			t.Fatalf("survivors of paddock: %s", strings.Join(desc, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// familyManifest writes a manifest with one family worker listening on
// port; it returns the manifest's path and the pid file's.
func familyManifest(t *testing.T, port int) (string, string) {
	t.Helper()
	self, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	return familyManifestOf(t, self, port)
}

// publicFamilyManifest is familyManifest for a paddock run by nobody
// (see unprivileged) when the test runs as root: the worker is a copy of
// the test binary that nobody may execute, and nobody may write the pid
// file.
func publicFamilyManifest(t *testing.T, port int) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return familyManifest(t, port)
	}
	bin := testkit.PublicCopy(t, testkit.PublicDir(t))
	manifest, pidfile := familyManifestOf(t, bin, port)
	if err := os.Chmod(filepath.Dir(manifest), 0o777); err != nil {
		t.Fatal(err)
	}
	return manifest, pidfile
}

// familyManifestOf is familyManifest with the test binary at self.
func familyManifestOf(t *testing.T, self string, port int) (string, string) {
	t.Helper()
	path := writeManifest(t, fmt.Sprintf(`
apps:
  fam:
    exec: %s
    env:
      PADDOCK_TEST_HELPER: family
      PIDFILE: $DIR/pids
    listen: ["127.0.0.1:%d"]
`, self, port))
	pidfile := filepath.Join(filepath.Dir(path), "pids")
	// Registered before paddock starts, so run after it was killed: after
	// a failure, nothing a family worker started outlives the test.
	t.Cleanup(func() {
		b, _ := os.ReadFile(pidfile)
		for _, l := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(l)
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if pid > 0 && strings.Contains("\x00"+string(env), "\x00PIDFILE="+pidfile+"\x00") {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return path, pidfile
}

// bindsAgain starts a new paddock whose app listens on port, and checks
// that it binds it: nothing left by the killed one holds it.
func bindsAgain(t *testing.T, port int) {
	t.Helper()
	r := startPaddock(t, writeManifest(t, fmt.Sprintf(`
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    listen: ["127.0.0.1:%d"]
`, port)))
	r.workerPIDs(1)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 0 {
		t.Errorf("the next paddock on port %d exited %d: %v", port, code, r.other)
	}
}
