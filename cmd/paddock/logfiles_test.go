package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestLogsReadFromFiles: once the ring has rolled past, `paddock logs
// --lines N APP` gives the older lines from the app's log files, rotated
// and gzip ones included, in order, each once, then the ones that follow.
func TestLogsReadFromFiles(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	pad := strings.Repeat("x", 300)
	// 7000 lines of about 410 bytes as JSON: the ring keeps the last
	// 256 KiB of them; the file of 1 MiB is rotated twice.
	manifest := writeManifest(t, `
apps:
  web:
    exec: /bin/sh
    args: ["-c", "trap 'echo after' USR1; seq -f '%05g `+pad+`' 1 7000; while :; do sleep 600 & wait $!; kill $! 2>/dev/null; done"]
    logs: {file: web.log, maxSize: 1Mi, maxFiles: 5, compress: true}
`)
	r := startWithSocket(t, sock, manifest)
	defer r.cmd.Process.Kill()
	dir := filepath.Dir(manifest)
	testkit.WaitFor(t, "two rotated files, compressed", func() bool {
		gz, _ := filepath.Glob(filepath.Join(dir, "web-*.log.gz"))
		plain, _ := filepath.Glob(filepath.Join(dir, "web-*.log"))
		return len(gz) == 2 && len(plain) == 0
	})
	var got []control.LogLine
	testkit.WaitFor(t, "7000 lines from paddock logs", func() bool {
		out := mustCLI(t, sock, "logs", "--json", "--lines", "8000", "web")
		got = nil
		for l := range strings.Lines(out) {
			var ll control.LogLine
			if err := json.Unmarshal([]byte(l), &ll); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			got = append(got, ll)
		}
		return len(got) == 7000
	})
	for i, l := range got {
		if want := fmt.Sprintf("%05d %s", i+1, pad); l.Text != want || l.App != "web" || l.Worker != 1 || l.Stream != "stdout" || l.Time.IsZero() {
			t.Fatalf("line %d: %+v, want %q of web/1 on stdout, with its time", i, l, want[:6])
		}
	}
	// The ring alone answers a request it can fill: the same last lines.
	out := mustCLI(t, sock, "logs", "--lines", "3", "web")
	if want := fmt.Sprintf("web/1 | 06998 %s\nweb/1 | 06999 %s\nweb/1 | 07000 %s\n", pad, pad, pad); out != want {
		t.Errorf("paddock logs --lines 3 web:\n%s", out)
	}
	// A worker filter: no line of web/2.
	if out := mustCLI(t, sock, "logs", "--lines", "6000", "web/2"); out != "" {
		t.Errorf("paddock logs web/2: %q", out)
	}
	followFiles(t, sock, pad)
}

// followFiles checks paddock logs -f of TestLogsReadFromFiles: the 7000
// lines from the files, then the one written next, each once.
func followFiles(t *testing.T, sock, pad string) {
	t.Helper()
	follow := exec.Command(paddockBin, "logs", "-f", "--lines", "8000", "web")
	follow.Env = append(os.Environ(), control.SocketEnv+"="+sock)
	var followed testkit.Buffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
	followed.WaitFor(t, fmt.Sprintf("web/1 | 07000 %s\n", pad))
	mustCLI(t, sock, "signal", "web", "USR1")
	followed.WaitFor(t, "web/1 | after\n")
	lines := strings.Split(strings.TrimSuffix(followed.String(), "\n"), "\n")
	if len(lines) != 7001 || lines[0] != "web/1 | 00001 "+pad || lines[7000] != "web/1 | after" {
		t.Errorf("paddock logs -f: %d lines, first %.20q, last %q; want 7001 lines, 00001 to 07000 then after", len(lines), lines[0], lines[len(lines)-1])
	}
}

// TestLogsReopen: an external logrotate renames the file, then SIGUSR1 to
// paddock (or paddock logs --reopen) makes a new one: the lines before the
// reopen are in the renamed file, those after in the new one, none lost
// and none twice; the lines are "app/id | " prefixed (--log-format text)
// for a worker that is not silent, whose stdout stays as written.
func TestLogsReopen(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, `
apps:
  web:
    exec: /bin/sh
    args: ["-c", "n=0; trap 'n=$((n+1)); echo line $n' USR1; echo started; while :; do sleep 600 & wait $!; kill $! 2>/dev/null; done"]
    logs: {file: logs/web.log}
`)
	cmd := exec.Command(paddockBin, "run", "--log-format", "text", "--socket", sock, manifest)
	var stdout testkit.Buffer
	cmd.Stdout = &stdout
	r := startPaddockCmd(t, cmd)
	dir := filepath.Join(filepath.Dir(manifest), "logs")
	path := filepath.Join(dir, "web.log")
	has := func(p, want string) {
		t.Helper()
		testkit.WaitFor(t, filepath.Base(p)+" holding "+want, func() bool {
			b, _ := os.ReadFile(p)
			return strings.Contains(string(b), want)
		})
	}
	has(path, "web/1 | started\n")
	line := 0
	say := func() {
		t.Helper()
		line++
		mustCLI(t, sock, "signal", "web", "USR1")
		has(path, fmt.Sprintf("web/1 | line %d\n", line))
	}
	say()
	rotate := func(suffix string, reopen func()) {
		t.Helper()
		if err := os.Rename(path, path+suffix); err != nil {
			t.Fatal(err)
		}
		reopen()
		testkit.WaitFor(t, "a new web.log", func() bool { _, err := os.Stat(path); return err == nil })
	}
	rotate(".1", func() {
		if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	})
	say()
	rotate(".2", func() {
		out := mustCLI(t, sock, "logs", "--reopen")
		if want := "reopened 1 log file\n  " + path + "\n"; out != want {
			t.Errorf("paddock logs --reopen: %q, want %q", out, want)
		}
	})
	say()
	for p, want := range map[string]string{
		path + ".1": "web/1 | started\nweb/1 | line 1\n",
		path + ".2": "web/1 | line 2\n",
		path:        "web/1 | line 3\n",
	} {
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s: %q, want %q", filepath.Base(p), b, want)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("web.log: %v, mode %v; want 0600", err, fi.Mode())
	}
	// paddock's own stdout: the lines as the worker wrote them.
	stdout.WaitFor(t, "started\nline 1\nline 2\nline 3\n")
	if _, errOut, code := cli(t, sock, "logs", "--reopen", "web"); code != exitUsage || !strings.Contains(errOut, "--reopen") {
		t.Errorf("paddock logs --reopen web: exit %d, %q; want a usage error", code, errOut)
	}
}
