package control

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestStatusUsageJSON: the resource use of workers and apps is in the
// status JSON as rssBytes, cpuPercent (two decimals), cpuSeconds and
// processes, and absent where there is none.
func TestStatusUsageJSON(t *testing.T) {
	st := supervisor.Status{
		Apps: []supervisor.AppStatus{
			{Name: "web", Usage: &supervisor.Usage{RSS: 3 << 20, CPUPercent: 12.3456, CPUTime: 2 * time.Second, Procs: 3}},
			{Name: "idle"},
		},
		Workers: []supervisor.WorkerInfo{
			{ID: 1, App: "web", PID: 10, Usage: &supervisor.Usage{RSS: 1 << 20, CPUPercent: 0.004, CPUTime: 1500 * time.Millisecond, Procs: 2}},
			{ID: 2, App: "web", PID: 0},
		},
	}
	b, err := json.Marshal(StatusFrom(SupervisorInfo{}, st))
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, want := range []string{
		`"name":"web","instances":0,"manifestInstances":0,"override":false,"running":0,"ready":0,"generation":"","schedulingPolicy":"","silent":false,"listen":[],"rssBytes":3145728,"cpuPercent":12.35}`,
		`"name":"idle","instances":0,"manifestInstances":0,"override":false,"running":0,"ready":0,"generation":"","schedulingPolicy":"","silent":false,"listen":[]}`,
		`"handedOut":0,"rssBytes":1048576,"cpuPercent":0,"cpuSeconds":1.5,"processes":2}`,
		`"id":2,"pid":0,`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status JSON lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(out, "rssBytes") != 2 {
		t.Errorf("rssBytes where there is no reading:\n%s", out)
	}
}
