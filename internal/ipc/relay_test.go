package ipc

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestRelayedTakeHalfTheQueue: relayed messages fill at most
// RelayQueueLen places of a worker's queue; the rest stays for the
// messages the protocol requires, which the same worker can still be
// sent.
func TestRelayedTakeHalfTheQueue(t *testing.T) {
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	// Not running: nothing drains the queue.
	line := []byte(`{"source":"_sio_adapter","type":3}` + "\n")
	queued := 0
	for range QueueLen {
		err := c.SendRelayed(line)
		if errors.Is(err, ErrQueueFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		queued++
	}
	if queued != RelayQueueLen {
		t.Errorf("%d relayed messages queued, want RelayQueueLen %d", queued, RelayQueueLen)
	}
	for i := range QueueLen - RelayQueueLen {
		if err := c.Send(map[string]any{"cmd": "NODE_CLUSTER", "ack": i}, -1, nil); err != nil {
			t.Fatalf("reply %d after the relayed messages: %v", i, err)
		}
	}
	if err := c.SendRaw(json.RawMessage(`1`)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Send on a full queue: %v", err)
	}
	c.Close()
	if err := c.SendRelayed(line); !errors.Is(err, ErrClosed) {
		t.Errorf("SendRelayed on a closed channel: %v, want ErrClosed", err)
	}
}
