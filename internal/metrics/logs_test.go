package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestLogDroppedCollected: paddock_log_dropped_lines_total gives each
// app's lines dropped from its log file, as the supervisor counts them.
func TestLogDroppedCollected(t *testing.T) {
	m := New(func(context.Context) (supervisor.Status, error) {
		return supervisor.Status{LogDropped: map[string]int64{"web": 37, "api": 0}}, nil
	})
	want := `
# HELP paddock_log_dropped_lines_total Workers' lines that could not be written to their app's log file (logs:): its queue was full (a slow or blocked disk) or a write failed (a full disk), by app.
# TYPE paddock_log_dropped_lines_total counter
paddock_log_dropped_lines_total{app="api"} 0
paddock_log_dropped_lines_total{app="web"} 37
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paddock_log_dropped_lines_total"); err != nil {
		t.Error(err)
	}
}
