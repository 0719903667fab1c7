package main

import (
	"fmt"
	"testing"
)

// TestCriticalAppFailedExitsThree: a critical app whose program exits 1 at
// once (backoff 10ms to 50ms, failAfter 1s) makes paddock log app-failed,
// stop every app gracefully, and exit 3; the healthy app beside it was
// stopped on purpose (its worker's exit is an intended one, after its
// killSignal), and no worker is left running. `critical: true` in the
// manifest, or --exit-on-failed for every app.
func TestCriticalAppFailedExitsThree(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"critical", "exit-on-failed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			critical := mode == "critical"
			path := writeManifest(t, fmt.Sprintf(`
apps:
  bad:
    exec: /bin/false
    backoff: {initial: 10ms, max: 50ms}
    critical: %v
    failAfter: 1s
  good:
    exec: /bin/sleep
    args: [3600]
`, critical))
			args := []string{"run", "--log-format", "json", path}
			if !critical {
				args = []string{"run", "--log-format", "json", "--exit-on-failed", path}
			}
			r := startPaddockArgs(t, args...)
			if code := r.wait(); code != exitAppFailed {
				t.Fatalf("exit code %d, want %d (a critical app failed)", code, exitAppFailed)
			}
			if !r.logged("crash-loop") || !r.logged("app-failed") {
				t.Fatal("no crash-loop or app-failed record in the log")
			}
			if d, _ := r.logValue("app-failed", "app"); d != "bad" {
				t.Errorf("app-failed names app %q, want bad", d)
			}
			good := r.find(func(m map[string]any) bool { return m["msg"] == "fork" && m["app"] == "good" })
			if good == nil {
				t.Fatal("good's worker was never forked")
			}
			pid := int(good["pid"].(float64))
			exit := r.find(func(m map[string]any) bool {
				return m["msg"] == "exit" && m["app"] == "good" && m["pid"] == good["pid"]
			})
			if exit == nil || exit["intended"] != true || exit["signal"] != "SIGTERM" {
				t.Errorf("good's worker (pid %d) exit record %v, want an intended exit by SIGTERM", pid, exit)
			}
			if failed, stopping := r.index("app-failed"), r.index("stopping"); stopping < failed {
				t.Errorf("a worker was stopped (log record %d) before app-failed (record %d)", stopping, failed)
			}
			if !dead(pid) {
				t.Errorf("good's worker, pid %d, outlived paddock", pid)
			}
		})
	}
}
