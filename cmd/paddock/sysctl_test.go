package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestSysctlFlag: for a reuseport app, paddock turns
// net.ipv4.tcp_migrate_req on and logs the old and the new value; with
// --sysctl=false it leaves the setting alone and warns. Each supervisor
// runs in a network namespace of its own, where the setting starts at 0,
// so the host's is not touched.
func TestSysctlFlag(t *testing.T) {
	t.Parallel()
	testkit.NeedRoot(t, "for a network namespace of its own")
	manifest := writeManifest(t, `
apps:
  web:
    exec: /bin/sleep
    args: [1000]
    schedulingPolicy: reuseport
    listen: ["0"]
`)
	const changed = "changed a sysctl: "
	const forbidden = "net.ipv4.tcp_migrate_req is 0 and --sysctl=false forbids paddock to turn it on"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, changed},
		{"sysctl=false", []string{"--sysctl=false"}, forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sock := socketPath(t)
			cmd := exec.Command(paddockBin, append(append([]string{"run", "--log-format", "json", "--socket", sock}, tc.args...), manifest)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
			r := startPaddockCmd(t, cmd)
			var line map[string]any
			testkit.WaitFor(t, "the sysctl log line", func() bool {
				line = r.find(func(m map[string]any) bool {
					msg, _ := m["msg"].(string)
					return strings.HasPrefix(msg, changed) || strings.Contains(msg, forbidden)
				})
				return line != nil
			})
			r.workerPIDs(1)
			msg := line["msg"].(string)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("logged %q, want %q", msg, tc.want)
			}
			if tc.want == changed && (line["level"] != "INFO" || line["sysctl"] != "net.ipv4.tcp_migrate_req" || line["old"] != "0" || line["new"] != "1") {
				t.Errorf("the change is logged as %v; want INFO, the sysctl, old 0 and new 1", line)
			}
			if tc.want == forbidden && line["level"] != "WARN" {
				t.Errorf("the warning is logged as %v", line)
			}
			r.cmd.Process.Signal(syscall.SIGTERM)
			if code := r.wait(); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
}
