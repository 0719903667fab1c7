package supervisor

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSystemdNotifyFromWorkerScript: a worker shell script that runs
// `systemd-notify --ready` (a child of the worker, in its process group;
// it sends READY=1, then BARRIER=1 with a descriptor, and fails unless that
// descriptor is closed within 5 s) is marked ready, and systemd-notify
// succeeds.
func TestSystemdNotifyFromWorkerScript(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify is not installed")
	}
	h := start(t, fmt.Sprintf(`
apps:
  script:
    exec: /bin/sh
    args: ["-c", "%s --ready --status=serving; echo notify-exit=$?; exec sleep 3600"]
    readiness: notify
    silent: true
`, bin))
	h.waitEvent("ready", isType(EventReady))
	deadline := time.Now().Add(patience)
	for !strings.Contains(h.out.String(), "notify-exit=") {
		if time.Now().After(deadline) {
			t.Fatalf("systemd-notify did not finish; output:\n%s", h.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(h.out.String(), "notify-exit=0") {
		t.Errorf("systemd-notify failed:\n%s", h.out.String())
	}
	ws := h.waitWorkers("status", func(ws []WorkerInfo) bool { return len(ws) == 1 && ws[0].Status == "serving" })
	if !ws[0].Ready {
		t.Errorf("worker %+v not ready", ws[0])
	}
}
