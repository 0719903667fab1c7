package control

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestStatusHealth: GET /v1/status gives each app's probes by result and
// each worker's failures in a row with the last answer, and leaves them
// out when there are none.
func TestStatusHealth(t *testing.T) {
	st := supervisor.Status{
		Workers:      []supervisor.WorkerInfo{{ID: 1, App: "web", PID: 10, HealthFailures: 2, HealthAnswer: "HTTP 500 Internal Server Error: sick"}, {ID: 2, App: "web", PID: 11}},
		HealthChecks: map[string]supervisor.HealthCounts{"web": {Pass: 7, Fail: 2, Timeout: 1}},
	}
	b, err := json.Marshal(StatusFrom(SupervisorInfo{}, st))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`"healthChecks":{"web":{"pass":7,"fail":2,"timeout":1}}`,
		`"healthFailures":2,"healthAnswer":"HTTP 500 Internal Server Error: sick"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("status %s lacks %s", s, want)
		}
	}
	if strings.Count(s, "healthFailures") != 1 {
		t.Errorf("a worker without failures has health fields: %s", s)
	}
	b, _ = json.Marshal(StatusFrom(SupervisorInfo{}, supervisor.Status{}))
	if strings.Contains(string(b), "healthChecks") {
		t.Errorf("status without health checks: %s", b)
	}
}
