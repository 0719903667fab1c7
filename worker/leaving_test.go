package worker

import (
	"errors"
	"testing"
	"time"
)

// TestListenFailsOnDisconnect: a Listen waiting for its answer when the
// supervisor disconnects the worker returns (the supervisor answers no
// listen of a worker it disconnects, as Node's primary does not), and so
// does a later one, at once.
func TestListenFailsOnDisconnect(t *testing.T) {
	p := channelEnv(t)
	w := openWorker(t)
	defer w.Close()
	p.next(t) // online

	pending := listenAsync(w, "tcp", "127.0.0.1:8000")
	p.queryServer(t)
	if err := p.conn.WriteLine([]byte(`{"cmd":"NODE_CLUSTER","act":"disconnect","seq":0}`+"\n"), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pending:
		if !errors.Is(err, errClosed) {
			t.Errorf("Listen pending at the disconnect: %v, want errClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Listen pending at the disconnect did not return")
	}
	select {
	case err := <-listenAsync(w, "tcp", "127.0.0.1:8001"):
		if !errors.Is(err, errClosed) {
			t.Errorf("Listen after the disconnect: %v, want errClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Listen after the disconnect did not return")
	}
}
