package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestRelayCollected: paddock_relayed_messages_total gives each app's
// relayed messages by result, as the supervisor counts them.
func TestRelayCollected(t *testing.T) {
	m := New(func(context.Context) (supervisor.Status, error) {
		return supervisor.Status{
			Relay: map[string]supervisor.RelayCounts{"chat": {Messages: 10, Delivered: 17, Dropped: 2, Unrouted: 1}},
		}, nil
	})
	want := `
# HELP paddock_relayed_messages_total Workers' messages relayed to other workers of the app (ipc.relay), by result: delivered (a copy queued to a worker), dropped (a copy a worker that does not read its IPC channel could not take), unrouted (a message for a worker or alias that is no running worker of the app).
# TYPE paddock_relayed_messages_total counter
paddock_relayed_messages_total{app="chat",result="delivered"} 17
paddock_relayed_messages_total{app="chat",result="dropped"} 2
paddock_relayed_messages_total{app="chat",result="unrouted"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paddock_relayed_messages_total"); err != nil {
		t.Error(err)
	}
}
