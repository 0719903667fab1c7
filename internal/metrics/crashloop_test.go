package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestCrashLoopingGauge: paddock_app_crash_looping is 1 for the apps whose
// status has a crash loop, 0 for the others.
func TestCrashLoopingGauge(t *testing.T) {
	m := New(func(context.Context) (supervisor.Status, error) {
		return supervisor.Status{Apps: []supervisor.AppStatus{
			{Name: "api", CrashLoop: &supervisor.CrashLoopStatus{Exits: 14, LastCode: 1}},
			{Name: "web"},
		}}, nil
	})
	want := `
# HELP paddock_app_crash_looping 1 while the app's workers keep exiting before they stayed up for its backoff.max (a crash loop).
# TYPE paddock_app_crash_looping gauge
paddock_app_crash_looping{app="api"} 1
paddock_app_crash_looping{app="web"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paddock_app_crash_looping"); err != nil {
		t.Error(err)
	}
}
