package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestPprofServer: with PADDOCK_PPROF set, paddock run serves a CPU
// profile (gzip-compressed protobuf, what `go tool pprof` reads) and the
// named profiles at the address it logs; without it, nothing is logged.
func TestPprofServer(t *testing.T) {
	t.Parallel()
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	cmd := exec.Command(paddockBin, "run", "--log-format", "json", manifest)
	cmd.Env = append(os.Environ(), "PADDOCK_SOCKET="+socketPath(t), pprofEnv+"=127.0.0.1:0")
	r := startPaddockCmd(t, cmd)
	var url string
	testkit.WaitFor(t, "the profile address in the log", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.logs {
			if strings.HasPrefix(fmt.Sprint(m["msg"]), "serving Go profiles") {
				url, _ = m["cpu"].(string)
				url = strings.TrimPrefix(url, "go tool pprof ")
			}
		}
		return url != ""
	})
	url = strings.Replace(url, "seconds=5", "seconds=1", 1)
	if code, b := httpGet(t, url); code != http.StatusOK || !strings.HasPrefix(b, "\x1f\x8b") {
		t.Errorf("GET %s: %d, %d bytes starting %q, want 200 and a gzip stream", url, code, len(b), b[:min(len(b), 8)])
	}
	base := strings.TrimSuffix(url, "/profile?seconds=1")
	if code, b := httpGet(t, base+"/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(b, "goroutine profile:") {
		t.Errorf("goroutine profile: %d %.200s", code, b)
	}
	if code, _ := httpGet(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("an unknown profile: %d, want 404", code)
	}
}
