package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// The systemd unit deploy/systemd/paddock.service, shown by
// docs/deploy-systemd.md.
var (
	systemdUnit = filepath.Join("..", "..", "deploy", "systemd", "paddock.service")
	systemdDoc  = filepath.Join("..", "..", "docs", "deploy-systemd.md")
)

// unitBin is where the unit says paddock is installed.
const unitBin = "/usr/local/bin/paddock"

// unitSetting is a Key=Value line of a unit file.
type unitSetting struct {
	section, key, value string
	line                int
}

// readUnit returns the settings of a unit file, in order.
func readUnit(t *testing.T, path string) []unitSetting {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []unitSetting
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s:%d: not Key=Value: %s", path, n, l)
			}
			out = append(out, unitSetting{section, k, v, n})
		}
	}
	return out
}

// TestSystemdUnitCommandLines: every paddock command the unit runs
// (ExecStart, ExecReload...) is a command of paddock's command line with
// flags and arguments it accepts, and the page shows the unit as it is.
func TestSystemdUnitCommandLines(t *testing.T) {
	t.Parallel()
	var execs int
	for _, s := range readUnit(t, systemdUnit) {
		if !strings.HasPrefix(s.key, "Exec") {
			continue
		}
		args := strings.Fields(s.value)
		if len(args) == 0 || args[0] != unitBin {
			continue
		}
		execs++
		root := newRootCmd(io.Discard, io.Discard)
		cmd, rest, err := root.Find(args[1:])
		if err != nil || cmd == root {
			t.Errorf("paddock.service:%d: %s: no such paddock command (%v)", s.line, s.value, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("paddock.service:%d: %s: %v", s.line, s.value, err)
			continue
		}
		if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
			t.Errorf("paddock.service:%d: %s: %v", s.line, s.value, err)
		}
	}
	if execs < 2 {
		t.Errorf("paddock.service runs paddock %d times, want ExecStart and ExecReload", execs)
	}
	unit, err := os.ReadFile(systemdUnit)
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(systemdDoc)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fencedBlocks(string(page)), fencedBlock{lang: "ini", body: string(unit)}) {
		t.Errorf("%s does not show deploy/systemd/paddock.service as it is, in an ```ini block", systemdDoc)
	}
}

// TestSystemdUnitVerify: systemd itself finds nothing to say about the
// unit (systemd-analyze verify warns about unknown keys and bad values
// without failing, so any output fails the test), paddock installed where
// it says.
func TestSystemdUnitVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("PADDOCK_SKIP_SYSTEMD") == "1" {
			t.Skip("systemd-analyze is not installed and PADDOCK_SKIP_SYSTEMD=1")
		}
		t.Fatal("systemd-analyze is not installed (make test-deps installs it; Debian: apt-get install systemd); PADDOCK_SKIP_SYSTEMD=1 skips this test")
	}
	unit, err := os.ReadFile(systemdUnit)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "paddock.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(unit), unitBin, paddockBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", "--generators=no", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify paddock.service: %v\n%s", err, out)
	}
}

// TestSystemdUnitLifecycle does what systemd does with the unit, without
// systemd: ExecStart with a NOTIFY_SOCKET (Type=notify) until READY=1,
// ExecReload after an edit (RELOADING=1, then READY=1) and after an
// invalid one (the reload fails, naming the error), then SIGTERM to the
// main process alone (KillMode=mixed): STOPPING=1 and exit 0.
func TestSystemdUnitLifecycle(t *testing.T) {
	t.Parallel()
	start, reload := unitCommands(t)
	// The manifest directory the unit names, here a temporary one.
	dir := t.TempDir()
	manifests := start[len(start)-1]
	write := func(content string) {
		if err := testkit.WriteFile(filepath.Join(dir, "web.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("apps:\n  web:\n    exec: /bin/sleep\n    args: [1000]\n    instances: 2\n")
	notifySock := filepath.Join(t.TempDir(), "notify")
	notes := notifyReceiver(t, notifySock)
	sock := socketPath(t)
	env := append(os.Environ(), control.SocketEnv+"="+sock, "NOTIFY_SOCKET="+notifySock)
	replace := func(args []string) []string {
		out := []string{paddockBin}
		for _, a := range args[1:] {
			if a == manifests {
				a = dir
			}
			out = append(out, a)
		}
		return out
	}
	args := replace(start)
	main := exec.Command(args[0], args[1:]...)
	main.Env = env
	r := startPaddockCmd(t, main)
	notes.WaitFor(t, "READY=1")
	notes.WaitFor(t, "STATUS=1 app, 2/2 workers ready")

	// A valid edit, then ExecReload.
	write("apps:\n  web:\n    exec: /bin/sleep\n    args: [1000]\n    instances: 3\n")
	args = replace(reload)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	if out, errOut, code := runCommand(t, cmd); code != 0 {
		t.Fatalf("ExecReload after a valid edit: exit %d\n%s%s", code, out, errOut)
	}
	notes.WaitFor(t, "RELOADING=1")
	testkit.WaitFor(t, "READY=1 after RELOADING=1", func() bool {
		s := notes.String()
		i := strings.Index(s, "RELOADING=1")
		return i >= 0 && strings.Contains(s[i:], "READY=1")
	})
	testkit.WaitFor(t, "3 workers", func() bool { return appOf(t, statusOf(t, sock), "web").Ready == 3 })

	// An invalid edit: the reload fails and says why.
	write("apps:\n  web:\n    exec: /bin/sleep\n    instances: -1\n")
	cmd = exec.Command(args[0], args[1:]...)
	cmd.Env = env
	out, errOut, code := runCommand(t, cmd)
	if code == 0 || !strings.Contains(out+errOut, "web.yaml:4:") {
		t.Errorf("ExecReload after an invalid edit: exit %d, want a failure naming web.yaml:4:COL\n%s%s", code, out, errOut)
	}
	if got := appOf(t, statusOf(t, sock), "web").Ready; got != 3 {
		t.Errorf("after an invalid edit, %d ready workers, want the 3 that ran", got)
	}

	// systemctl stop with KillMode=mixed: SIGTERM to paddock alone.
	if err := main.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 0 {
		t.Errorf("paddock exited %d after SIGTERM, want 0", code)
	}
	notes.WaitFor(t, "STOPPING=1")
}

// unitCommands returns the unit's ExecStart and ExecReload, split in
// words, after checking the settings TestSystemdUnitLifecycle acts out.
func unitCommands(t *testing.T) (start, reload []string) {
	t.Helper()
	for _, s := range readUnit(t, systemdUnit) {
		switch s.key {
		case "ExecStart":
			start = strings.Fields(s.value)
		case "ExecReload":
			reload = strings.Fields(s.value)
		case "Type":
			if s.value != "notify" {
				t.Fatalf("Type=%s: this test speaks the notify protocol", s.value)
			}
		case "KillMode":
			if s.value != "mixed" {
				t.Fatalf("KillMode=%s: this test signals paddock alone, as mixed does", s.value)
			}
		}
	}
	if len(start) < 2 || start[0] != unitBin || len(reload) < 2 || reload[0] != unitBin {
		t.Fatalf("the unit's ExecStart %q and ExecReload %q are not paddock commands", start, reload)
	}
	return start, reload
}

// notifyReceiver listens on a datagram socket at path, as systemd's
// NOTIFY_SOCKET, and returns what arrives, a datagram a line.
func notifyReceiver(t *testing.T, path string) *testkit.Buffer {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	notes := &testkit.Buffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			notes.Write(append(buf[:n:n], '\n'))
		}
	}()
	return notes
}
