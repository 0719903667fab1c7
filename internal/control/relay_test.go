package control

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestStatusRelay: GET /v1/status gives each app's relayed messages, and
// leaves them out when no app relayed any.
func TestStatusRelay(t *testing.T) {
	st := supervisor.Status{Relay: map[string]supervisor.RelayCounts{"chat": {Messages: 9, Delivered: 15, Dropped: 3, Unrouted: 1}}}
	b, err := json.Marshal(StatusFrom(SupervisorInfo{}, st))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"relay":{"chat":{"messages":9,"delivered":15,"dropped":3,"unrouted":1}}`; !strings.Contains(string(b), want) {
		t.Errorf("status %s lacks %s", b, want)
	}
	b, _ = json.Marshal(StatusFrom(SupervisorInfo{}, supervisor.Status{}))
	if strings.Contains(string(b), `"relay"`) {
		t.Errorf("status without relaying: %s", b)
	}
}
