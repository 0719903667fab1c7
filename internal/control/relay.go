package control

import "github.com/paddock-sh/paddock/internal/supervisor"

// RelayCounts counts an app's relayed messages (ipc.relay) since paddock
// started: see supervisor.RelayCounts.
type RelayCounts struct {
	// Messages: the workers' messages that matched a rule (none of them
	// was a message event).
	Messages int64 `json:"messages"`
	// Delivered: the copies queued to a worker; Dropped: those a worker
	// that does not read its IPC channel could not take.
	Delivered int64 `json:"delivered"`
	Dropped   int64 `json:"dropped"`
	// Unrouted: the messages for a worker or an alias that was no
	// running worker of the app.
	Unrouted int64 `json:"unrouted"`
}

// relayFrom converts the supervisor's relay counts; nil for none.
func relayFrom(counts map[string]supervisor.RelayCounts) map[string]RelayCounts {
	if len(counts) == 0 {
		return nil
	}
	out := make(map[string]RelayCounts, len(counts))
	for app, c := range counts {
		out[app] = RelayCounts{Messages: c.Messages, Delivered: c.Delivered, Dropped: c.Dropped, Unrouted: c.Unrouted}
	}
	return out
}
