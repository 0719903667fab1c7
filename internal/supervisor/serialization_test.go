package supervisor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestNodeWorkerChannelIsJSONWhateverPaddockInherited: paddock started by a
// Node parent whose channel uses V8 serialization inherits
// NODE_CHANNEL_SERIALIZATION_MODE=advanced (and that channel's other
// variables); its own Node workers still speak JSON to it, which is all
// paddock speaks: their messages arrive and paddock's reach them.
func TestNodeWorkerChannelIsJSONWhateverPaddockInherited(t *testing.T) {
	t.Parallel()
	needNode(t)
	h := startWith(t, "", func(_ *harness, o *Options) {
		o.Environ = append(os.Environ(), "NODE_CHANNEL_SERIALIZATION_MODE=advanced", "NODE_CHANNEL_FD=9", "NODE_UNIQUE_ID=77")
	})
	if err := testkit.WriteFile(filepath.Join(h.dir, "server.js"), []byte(pidWorker), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sup.Apply(context.Background(), load(t, h.dir, pidApp("node", "rr", freePort(t), 1, "1"))); err != nil {
		t.Fatal(err)
	}
	m := h.waitEvent("the worker's first message", isType(EventMessage))
	var got struct {
		ClusterID int `json:"clusterId"`
	}
	if err := json.Unmarshal([]byte(m.Detail), &got); err != nil || got.ClusterID != m.Worker {
		t.Fatalf("message %q (%v): want the worker's cluster id %d", m.Detail, err, m.Worker)
	}
	if n, err := h.sup.Send(context.Background(), "web", m.Worker, json.RawMessage(`{"ping":1}`)); n != 1 || err != nil {
		t.Fatalf("Send: %d %v", n, err)
	}
	h.waitEvent("the echo", func(e Event) bool { return e.Type == EventMessage && e.Detail == `{"echo":{"ping":1}}` })
}
