package main

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestValidateListenInUse: an address that another process holds makes
// `paddock validate` warn, naming the value's file, line and column, and
// still exit 0 (the manifests may run on another host); an address that
// is free, or a stale unix socket, gives no warning, and validate leaves
// no socket or file behind.
func TestValidateListenInUse(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()

	dir := t.TempDir()
	liveSock := filepath.Join(dir, "live.sock")
	live, err := net.Listen("unix", liveSock)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	staleSock := filepath.Join(dir, "stale.sock")
	testkit.StaleUnixSocket(t, staleSock)
	notSock := filepath.Join(dir, "file.sock")
	if err := testkit.WriteFile(notSock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	freeSock := filepath.Join(dir, "free.sock")

	m := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [60]
    listen: ["`+addr+`", 0, "unix:`+freeSock+`"]
  api:
    exec: /bin/sleep
    args: [60]
    listen:
      - "unix:`+staleSock+`"
      - "unix:`+liveSock+`"
      - "unix:`+notSock+`"
`)
	stdout, stderr, code := runCommand(t, exec.Command(paddockBin, "validate", m))
	if code != 0 || stdout != "ok: 2 apps, 2 workers\n" {
		t.Errorf("exit code %d, stdout %q, want 0 and ok\nstderr: %s", code, stdout, stderr)
	}
	want := []string{
		"warning: " + m + ":6:14: apps.web.listen[0]: " + addr + " is in use on this host (by another process); paddock run would refuse this set here",
		"warning: " + m + ":12:9: apps.api.listen[1]: unix:" + liveSock + " is in use on this host (by another process); paddock run would refuse this set here",
		"warning: " + m + ":13:9: apps.api.listen[2]: unix:" + notSock + ": " + notSock + " exists and is not a socket; paddock run would refuse this set here",
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.Contains(line, "listen[") {
			got = append(got, line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("listen warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Nothing created, nothing removed.
	names := testkit.DirNames(t, dir)
	if strings.Join(names, " ") != "file.sock live.sock stale.sock" {
		t.Errorf("%s holds %q after validate, want file.sock live.sock stale.sock", dir, names)
	}
	// The held address is still ours: it accepts.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s after validate: %v", addr, err)
	}
	c.Close()
}

// TestValidateNoShebang: an executable script without a #! line, which
// the kernel cannot run (every start would fail with "exec format error"),
// is an error at the exec value with the remedy.
func TestValidateNoShebang(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "serve.sh")
	if err := testkit.WriteFile(script, []byte("echo serving\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := writeManifest(t, "apps:\n  web:\n    exec: "+script+"\n")
	stdout, stderr, code := runCommand(t, exec.Command(paddockBin, "validate", m))
	want := m + ":3:11: apps.web.exec: " + script + " is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh) or set execPath"
	if code != 1 || stdout != "" || strings.TrimSpace(stderr) != want {
		t.Errorf("exit code %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, stdout, stderr, want)
	}

	// With the #! line, or an interpreter, it validates.
	if err := testkit.WriteFile(script, []byte("#!/bin/sh\necho serving\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runCommand(t, exec.Command(paddockBin, "validate", m)); code != 0 {
		t.Errorf("with #!: exit code %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if err := testkit.WriteFile(script, []byte("echo serving\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m2 := writeManifest(t, "apps:\n  web:\n    exec: "+script+"\n    execPath: sh\n")
	if stdout, stderr, code := runCommand(t, exec.Command(paddockBin, "validate", m2)); code != 0 {
		t.Errorf("with execPath: exit code %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// TestValidateBesideItsOwnSupervisor: validated where a paddock already
// runs the manifests, the addresses that paddock's app holds are not
// reported (a reload keeps them); the same address under another app is.
func TestValidateBesideItsOwnSupervisor(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	const app = "apps:\n  %s:\n    exec: /bin/sleep\n    args: [600]\n    listen: [\"127.0.0.1:%d\"]\n"
	running := writeManifest(t, fmt.Sprintf(app, "web", port))
	sock := socketPath(t)
	r := startWithSocket(t, sock, running)
	defer r.cmd.Process.Kill()
	testkit.WaitFor(t, "the worker", func() bool { return len(liveWorkers(statusOf(t, sock), "web")) == 1 })
	_, errOut, code := cli(t, sock, "validate", running)
	if code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("validate of the running manifests beside their paddock: exit %d, stderr %q; want 0 and no warning", code, errOut)
	}
	other := writeManifest(t, fmt.Sprintf(app, "api", port))
	_, errOut, code = cli(t, sock, "validate", other)
	if code != 0 || !strings.Contains(errOut, "apps.api.listen[0]: 127.0.0.1:") || !strings.Contains(errOut, "is in use on this host") {
		t.Errorf("validate of another app on the running paddock's address: exit %d, stderr %q; want 0 and a warning", code, errOut)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 3
  api:
    exec: /bin/sleep
    args: [3600]
`)
	bad := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    instances: -2
    restart: sometimes
`)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{"valid", []string{"validate", good}, 0, "ok: 2 apps, 4 workers\n", nil},
		{"invalid", []string{"validate", bad}, 1, "", []string{
			bad + ":5:16: apps.web.instances: must be an integer >= 0 or \"auto\", got -2",
			bad + ":6:14: apps.web.restart: must be one of always, on-failure, never, got \"sometimes\"",
		}},
		{"missing path", []string{"validate", "/nonexistent/paddock.yaml"}, 2, "", []string{"/nonexistent/paddock.yaml"}},
		{"bad flag", []string{"validate", "--frobnicate", good}, 2, "", []string{"flag provided but not defined"}},
		{"unknown command", []string{"frobnicate"}, 2, "", []string{"unknown command"}},
		{"help", []string{"validate", "--help"}, 0, "Check the manifests PATH", nil},
		{"version", []string{"version"}, 0, "paddock ", nil},
		{"run with invalid manifest starts nothing", []string{"run", bad}, 1, "", []string{"apps.web.instances"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runCommand(t, exec.Command(paddockBin, tt.args...))
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.HasPrefix(stdout, tt.wantStdout) || (tt.wantStdout == "" && len(stdout) > 0 && tt.name != "help") {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if tt.name == "run with invalid manifest starts nothing" && strings.Contains(stderr, "fork") {
				t.Errorf("a worker was started:\n%s", stderr)
			}
		})
	}
}

// TestValidateUDP: a udp: address another socket holds is reported as in
// use; beside the running paddock that holds it for the same app it is not
// reported, and that paddock's status names it "udp:"; TCP on the same
// port, held by another process, is still reported there (the paddock
// holds the UDP socket, not that).
func TestValidateUDP(t *testing.T) {
	t.Parallel()
	heldTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer heldTCP.Close()
	addr := heldTCP.Addr().String()
	held, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Skipf("UDP %s is taken: %v", addr, err)
	}
	m := writeManifest(t, "apps:\n  dns:\n    exec: /bin/sleep\n    args: [600]\n    listen: [\"udp:"+addr+"\"]\n")
	_, stderr, code := runCommand(t, exec.Command(paddockBin, "validate", m))
	want := "warning: " + m + ":5:14: apps.dns.listen[0]: udp:" + addr + " is in use on this host (by another process); paddock run would refuse this set here"
	if code != 0 || strings.TrimSpace(stderr) != want {
		t.Errorf("validate with the UDP address taken: exit %d, stderr %q; want 0 and\n%s", code, stderr, want)
	}
	held.Close()

	sock := socketPath(t)
	r := startWithSocket(t, sock, m)
	defer r.cmd.Process.Kill()
	testkit.WaitFor(t, "the worker", func() bool { return len(liveWorkers(statusOf(t, sock), "dns")) == 1 })
	if got := strings.Join(statusOf(t, sock).Apps[0].Listen, " "); got != "udp:"+addr {
		t.Errorf("status listen %q, want udp:%s", got, addr)
	}
	if _, errOut, code := cli(t, sock, "validate", m); code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("validate beside its own paddock: exit %d, stderr %q; want 0 and no warning", code, errOut)
	}
	tcp := writeManifest(t, "apps:\n  dns:\n    exec: /bin/sleep\n    args: [600]\n    listen: [\""+addr+"\"]\n")
	_, errOut, code := cli(t, sock, "validate", tcp)
	if want := "apps.dns.listen[0]: " + addr + " is in use on this host"; code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("validate of TCP on the port, held by the test: exit %d, stderr %q; want 0 and %q", code, errOut, want)
	}
}
