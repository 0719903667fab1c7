package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// healthURL returns the base URL of --health-addr's own listener, from
// the log.
func healthURL(t *testing.T, r *running) string {
	t.Helper()
	var url string
	testkit.WaitFor(t, "the health address in the log", func() bool {
		url, _ = r.logValue("serving health endpoints", "url")
		return url != ""
	})
	return strings.TrimSuffix(url, "readyz")
}

// waitHTTP waits until GET url answers code, and returns the body.
func waitHTTP(t *testing.T, url string, code int) string {
	t.Helper()
	var got int
	var body string
	testkit.WaitFor(t, fmt.Sprintf("GET %s to answer %d", url, code), func() bool {
		got, body = httpGet(t, url)
		return got == code
	})
	return body
}

// TestHealthAddrReadiness runs paddock with --health-addr and real
// workers: /readyz is 503 naming the app whose worker is not ready (its
// exec healthCheck fails until a file exists), 200 for an app asked for
// that is ready, 200 for all once the file exists; /livez and /healthz
// are 200; only GET and HEAD pass. On SIGTERM, with a worker that ignores
// it, /readyz says paddock is stopping while /livez stays 200: the drain.
func TestHealthAddrReadiness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flag := filepath.Join(dir, "ready")
	manifest := writeManifest(t, fmt.Sprintf(`
apps:
  web:
    exec: /bin/sleep
    args: [1000]
    readiness: exec
    healthCheck:
      exec: [/bin/test, -e, %s]
      interval: 100ms
      timeout: 30s
    readyTimeout: 1h
  api:
    exec: %s
    env: {PADDOCK_TEST_HELPER: stubborn, READY: %s}
    killTimeout: 1h
`, flag, selfPath(t), filepath.Join(dir, "api.started")))
	sock := socketPath(t)
	r := startWithSocket(t, sock, "--health-addr", "127.0.0.1:0", manifest)
	base := healthURL(t, r)

	if code, body := httpGet(t, base+"livez"); code != 200 || body != "ok: paddock's loop answered\n" {
		t.Errorf("GET /livez: %d %q", code, body)
	}
	// api is ready once its worker has been up for minReadyTime (1s).
	waitHTTP(t, base+"readyz?app=api", 200)
	code, body := httpGet(t, base+"readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready: web\n") || !strings.Contains(body, "web: not ready: 0/1 available\n") ||
		!strings.Contains(body, "api: 1/1 available\n") {
		t.Errorf("GET /readyz with web not ready: %d\n%s", code, body)
	}
	if code, body := httpGet(t, base+"readyz?app=web"); code != 503 || !strings.Contains(body, "web: not ready") {
		t.Errorf("GET /readyz?app=web: %d\n%s", code, body)
	}
	if code, body := httpGet(t, base+"healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q", code, body)
	}

	if err := testkit.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkAllReady(t, base)
	checkDrain(t, r, base, filepath.Join(dir, "api.started"))
	r.wait()
}

// checkAllReady waits for /readyz to be 200 with both apps, and checks the
// methods and the other routes of the health listener.
func checkAllReady(t *testing.T, base string) {
	t.Helper()
	body := waitHTTP(t, base+"readyz", 200)
	if body != "ok: 2 apps ready\napi: 1/1 available\nweb: 1/1 available\n" {
		t.Errorf("GET /readyz, all ready: %q", body)
	}
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		if code := httpDo(t, method, base+"readyz"); code != http.StatusMethodNotAllowed {
			t.Errorf("%s /readyz: %d, want 405", method, code)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, base+"readyz", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD /readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, _ := httpGet(t, base+"metrics"); code != 200 {
		t.Errorf("GET /metrics on the health listener: %d", code)
	}

}

// checkDrain sends paddock SIGTERM, with a worker that ignores it (once it
// wrote the file started): /readyz
// says paddock is stopping, /livez stays 200, /healthz is 503; a second
// SIGTERM ends it.
func checkDrain(t *testing.T, r *running, base, started string) {
	t.Helper()
	testkit.WaitFor(t, "api to ignore SIGTERM", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	// The drain: api ignores SIGTERM and has an hour to stop.
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if body := waitHTTP(t, base+"readyz", 503); body != "not ready: paddock is stopping\n" {
		t.Errorf("GET /readyz while stopping: %q", body)
	}
	if code, _ := httpGet(t, base+"livez"); code != 200 {
		t.Errorf("GET /livez while stopping: %d, want 200", code)
	}
	if code, body := httpGet(t, base+"healthz"); code != 503 || body != "unhealthy: paddock is stopping\n" {
		t.Errorf("GET /healthz while stopping: %d %q", code, body)
	}
	// A second SIGTERM kills every worker at once.
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TestHealthAddrSharesListeners: --health-addr naming --http-addr's address
// (or --metrics-addr's) opens no listener of its own; the health endpoints
// are on every HTTP listener.
func TestHealthAddrSharesListeners(t *testing.T) {
	t.Parallel()
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"http-addr", []string{"--http-addr", ":0", "--health-addr", ":0"}},
		{"metrics-addr", []string{"--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := socketPath(t)
			r := startWithSocket(t, sock, append(tc.args, manifest)...)
			waitWorkers(t, sock, "web", 1)
			base := pageURL(t, r)
			waitHTTP(t, base+"readyz", 200)
			if code, _ := httpGet(t, base+"livez"); code != 200 {
				t.Errorf("GET /livez on the page's listener: %d", code)
			}
			if urls := r.loggedAll("serving health endpoints", "url"); len(urls) != 0 {
				t.Errorf("a listener of its own for --health-addr: %q", urls)
			}
		})
	}
}

// TestHealthAddrInvalid: an address that is not HOST:PORT is a usage
// error, before anything starts.
func TestHealthAddrInvalid(t *testing.T) {
	t.Parallel()
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	cmd := exec.Command(paddockBin, "run", "--socket", socketPath(t), "--health-addr", "8081", manifest)
	_, stderr, code := runCommand(t, cmd)
	if code != exitUsage || !strings.Contains(stderr, `--health-addr "8081"`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
