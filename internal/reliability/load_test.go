package reliability

import (
	"fmt"
	"path/filepath"
	"testing"
)

// webApp is the manifest of app web, 2 workers of the http helper on
// 127.0.0.1:port under policy: LISTEN_FDS workers for none and
// reuseport, cluster workers (package worker, IPC channel) for rr.
func webApp(policy string, port int) string {
	ipc := "off"
	if policy == "rr" {
		ipc = "node"
	}
	return fmt.Sprintf(`
apps:
  web:
    exec: %s
    instances: 2
    schedulingPolicy: %s
    ipc: %s
    listen: ["127.0.0.1:%d"]
    readiness: notify
    killTimeout: 60s
    rollout: {maxSurge: 1, maxUnavailable: 0}
    env: {%s: http, PORT: "%d", VERSION: "1"}
`, selfBin, policy, ipc, port, helperEnv, port)
}

// TestRollingUpdatesUnderLoad: rolling restarts (paddock restart --wait,
// each a new generation replacing both workers new first) one after the
// other while 4 clients send requests without pause, a new connection
// each; for none, reuseport and rr. No request may be refused or fail.
func TestRollingUpdatesUnderLoad(t *testing.T) {
	t.Parallel()
	cycles := size(3, 50)
	for _, policy := range []string{"none", "reuseport", "rr"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			manifest := filepath.Join(t.TempDir(), "paddock.yaml")
			writeFile(t, manifest, webApp(policy, port))
			s := startPaddock(t, nil, manifest)
			s.waitRunning("web", 2)
			// Load starts as soon as the workers run, before they are
			// ready: connections wait in paddock's queue until a worker
			// listens, and none may be lost then either (under rr, one was
			// reset when the first worker's server was handed a connection
			// before it was registered: docs/reliability.md).
			l := startLoad(fmt.Sprintf("127.0.0.1:%d", port), 4)
			defer l.stop()
			l.waitAnswered(t, 100)
			done := 0
			lost := "nothing"
			defer func() {
				l.stop()
				if n := l.refused.Load() + l.failed.Load(); n > 0 {
					lost = fmt.Sprintf("%d refused, %d failed: %q", l.refused.Load(), l.failed.Load(), l.errs)
					t.Errorf("requests lost during rolling updates: %s", lost)
				}
			}()
			record(t, func() (string, string, string) {
				return fmt.Sprintf("%s: %d rolling updates of 2 workers under load (4 clients)", policy, cycles),
					fmt.Sprintf("%d updates completed, %d requests served", done, l.ok.Load()), lost
			})
			for range cycles {
				if out, code := s.cli("restart", "--wait", "web"); code != 0 {
					t.Fatalf("paddock restart --wait web: exit %d\n%s", code, out)
				}
				done++
				l.waitAnswered(t, 20)
			}
		})
	}
}
