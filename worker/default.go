package worker

// The top-level functions: thin wrappers over a Worker the package opens
// on first use and keeps for the life of the process.

import (
	"encoding/json"
	"net"
	"sync"

	"github.com/paddock-sh/paddock/internal/notify"
)

var (
	defaultMu sync.Mutex
	defaultW  *Worker
)

// defaultWorker returns the package's Worker, opening it on the first call
// (a channel that could not be opened is reported by its methods).
func defaultWorker() *Worker {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultW == nil {
		defaultW = open()
	}
	return defaultW
}

// ID returns this worker's id (PADDOCK_WORKER_ID, as Node's
// cluster.worker.id), or 0 when not run by paddock. It reads the
// environment and opens nothing.
func ID() int { return envID() }

// Ready tells the supervisor this worker is ready to serve (READY=1 on
// $NOTIFY_SOCKET, for `readiness: notify`). Without a notify socket it does
// nothing. It reads the environment at each call and opens nothing (no IPC
// channel): Worker.Ready is the same for an opened Worker.
func Ready() error {
	_, err := notify.Send("READY=1")
	return err
}

// Send sends v, encoded as JSON, to the supervisor (Node's process.send),
// through the package's Worker (see Worker.Send).
func Send(v any) error { return defaultWorker().Send(v) }

// Messages returns the channel on which the supervisor's messages arrive
// (Node's process.on('message')), through the package's Worker (see
// Worker.Messages). Without an IPC channel it is nil.
func Messages() <-chan json.RawMessage { return defaultWorker().Messages() }

// Disconnecting is closed when the supervisor asks this worker to leave
// (cluster's disconnect), through the package's Worker (see
// Worker.Disconnecting). Without an IPC channel it is nil.
func Disconnecting() <-chan struct{} { return defaultWorker().Disconnecting() }

// HealthListener returns a listener on this worker's own health socket,
// through the package's Worker (see Worker.HealthListener).
func HealthListener() (net.Listener, error) { return defaultWorker().HealthListener() }

// Listen returns a listener for network and address, through the package's
// Worker (see Worker.Listen): fed by the supervisor under paddock with an
// IPC channel, an inherited LISTEN_FDS socket, or else net.Listen.
func Listen(network, address string) (net.Listener, error) {
	return defaultWorker().Listen(network, address)
}
