package ipc

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
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

// TestRelayedBytesAreBounded: relayed messages that wait for a worker hold
// at most RelayQueueBytes in all (messages may be as long as MaxMessage):
// one more is refused (dropped and counted by the supervisor), whatever
// their number; the longest message is taken when none waits; and the
// room comes back as they are written.
func TestRelayedBytesAreBounded(t *testing.T) {
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	// Not running: nothing drains the queue.
	line := make([]byte, RelayQueueBytes/4)
	queued := 0
	for range RelayQueueLen {
		err := c.SendRelayed(line)
		if errors.Is(err, ErrQueueFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		queued++
	}
	if queued != 4 {
		t.Errorf("%d relayed messages of a quarter of RelayQueueBytes queued, want 4", queued)
	}
	if err := c.Send(map[string]any{"cmd": "NODE_CLUSTER", "ack": 1}, -1, nil); err != nil {
		t.Errorf("a reply after them: %v", err)
	}
	c.Close()

	c, child2, err := Pair(8)
	if err != nil {
		t.Fatal(err)
	}
	defer child2.Close()
	longest := make([]byte, RelayQueueBytes+1) // its content is not looked at
	if err := c.SendRelayed(longest); err != nil {
		t.Errorf("the longest message with none waiting: %v", err)
	}
	if err := c.SendRelayed([]byte("2\n")); !errors.Is(err, ErrQueueFull) {
		t.Errorf("one more behind it: %v, want ErrQueueFull", err)
	}
	// Once it left the queue (to be written: nobody reads it), there is
	// room again.
	running(t, c)
	testkit.WaitFor(t, "room for relayed messages again", func() bool { return c.relayedBytes.Load() == 0 })
	if err := c.SendRelayed([]byte("2\n")); err != nil {
		t.Errorf("after it was written: %v", err)
	}
}
