package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestReloadBySIGHUPAndByWatching(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: %d
`
	for _, mode := range []string{"sighup", "watch"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			path := writeManifest(t, fmt.Sprintf(manifestFmt, 1))
			args := []string{"run", "--log-format", "json", "--reload-debounce", "50ms"}
			if mode == "sighup" {
				args = append(args, "--watch=false")
			}
			r := startPaddockArgs(t, append(args, path)...)
			r.workerPIDs(1)
			if mode == "watch" {
				testkit.WaitFor(t, "the watching event", func() bool { return r.logged("watching") })
			}
			if err := testkit.WriteFile(path, []byte(fmt.Sprintf(manifestFmt, 3)), 0o644); err != nil {
				t.Fatal(err)
			}
			if mode == "sighup" {
				if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			r.workerPIDs(3)
			if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d", code)
			}
			// Not watching: nothing reloaded before SIGHUP. The log, read
			// whole now that paddock exited, shows it in its order; no
			// waiting for something not to happen.
			if mode == "sighup" {
				if r.logged("watching") {
					t.Error("the manifests were watched although --watch=false")
				}
				if hup, reload := r.index("SIGHUP: reloading manifests"), r.index("reload"); reload < hup {
					t.Errorf("reloaded (log record %d) before SIGHUP (record %d) although --watch=false", reload, hup)
				}
			}
		})
	}
}

func TestAddressInUseAtStartup(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	path := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    listen: ["`+busy.Addr().String()+`"]
`)
	cmd := exec.Command(paddockBin, "run", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want code 1", err)
	}
	want := path + ":6:14: apps.web.listen[0]: cannot listen on " + busy.Addr().String() + ": address already in use"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	if strings.Contains(stderr.String(), "msg=fork") {
		t.Errorf("a worker was started:\n%s", stderr.String())
	}
}
