// Package worker lets a Go program be a paddock worker the way a Node
// program is one with the cluster module: Listen returns a listener fed by
// the supervisor (round-robin or sticky connections handed over the IPC
// channel, the shared or own socket for none and reuseport, or a LISTEN_FDS
// socket), and the program exchanges messages with the supervisor and says
// when it is ready. Outside paddock, Listen is net.Listen and the rest does
// nothing, so the same program runs anywhere.
//
// Open returns a Worker, this process's end of what paddock handed it,
// whose lifetime the program controls (Close). The top-level functions
// (Listen, Send, Messages, Disconnecting) use a Worker the package opens on
// their first call and never closes, for programs that want no more.
//
// The wire protocol is in docs/protocol.md; the wire itself (framing,
// descriptors, acknowledgements, limits) is package internal/nodeipc, shared
// with the supervisor's end.
package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/internal/notify"
)

// ErrNoChannel is returned when the worker has no IPC channel.
var ErrNoChannel = errors.New("worker: no IPC channel (not run by paddock with ipc)")

// Worker is this process's end of what paddock gave it, read from the
// environment once, by Open: its id, its IPC channel (NODE_CHANNEL_FD),
// its LISTEN_FDS sockets and its notify socket (NOTIFY_SOCKET). With an
// IPC channel, a goroutine reads the supervisor's messages until Close.
// Its methods may be called from any goroutine.
type Worker struct {
	id     int
	notify string // $NOTIFY_SOCKET; "" without one
	// clusterListen: Listen asks the supervisor (NODE_CHANNEL_FD and
	// NODE_UNIQUE_ID, as Node's cluster worker).
	clusterListen bool
	ch            *channel // nil without a channel; then chErr says why
	chErr         error

	mu        sync.Mutex
	inherited []net.Listener // LISTEN_FDS sockets no Listen took yet
	closed    bool
	// health is the worker's health socket until HealthListener takes
	// it; healthErr says why there is none.
	health    net.Listener
	healthErr error
}

// Open reads what paddock handed this process from the environment: with
// NODE_CHANNEL_FD, it opens the IPC channel, starts the goroutine that
// reads it and tells the supervisor the worker is online; with LISTEN_FDS
// for this process (LISTEN_PID) and no cluster channel, it takes the
// inherited sockets for Listen. Outside paddock it returns a Worker whose
// Listen is net.Listen and whose other methods do nothing or report
// ErrNoChannel. It fails only when NODE_CHANNEL_FD names a descriptor that
// is not a usable channel.
//
// Open the Worker once per process: the descriptors it takes are the
// process's, and a second Worker finds them taken. Close it when done.
func Open() (*Worker, error) {
	w := open()
	if w.chErr != nil && !errors.Is(w.chErr, ErrNoChannel) {
		err := w.chErr
		w.Close()
		return nil, err
	}
	return w, nil
}

// open is Open keeping a channel that could not be opened as chErr, for
// the methods to report, as the top-level functions always did.
func open() *Worker {
	w := &Worker{id: envID(), notify: os.Getenv("NOTIFY_SOCKET"),
		clusterListen: os.Getenv("NODE_CHANNEL_FD") != "" && os.Getenv("NODE_UNIQUE_ID") != ""}
	w.ch, w.chErr = openChannel(os.Getenv("NODE_CHANNEL_FD"))
	if !w.clusterListen {
		w.inherited = inheritedListeners()
	}
	w.health, w.healthErr = healthListener()
	return w
}

// Close ends the IPC channel and waits for its reader goroutine to end,
// and closes the inherited sockets that no Listen took. Listeners that
// Listen returned are the caller's to close; those the supervisor fed
// receive no more connections. Close is idempotent and always returns nil.
func (w *Worker) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	inherited := w.inherited
	w.inherited = nil
	if w.health != nil {
		inherited = append(inherited, w.health)
		w.health, w.healthErr = nil, errHealthTaken
	}
	w.mu.Unlock()
	for _, l := range inherited {
		if l != nil {
			l.Close()
		}
	}
	if w.ch != nil {
		w.ch.stop()
	}
	return nil
}

// ID returns this worker's id (PADDOCK_WORKER_ID, as Node's
// cluster.worker.id), or 0 when not run by paddock.
func (w *Worker) ID() int { return w.id }

func envID() int {
	for _, k := range []string{"PADDOCK_WORKER_ID", "NODE_UNIQUE_ID"} {
		if id, err := strconv.Atoi(os.Getenv(k)); err == nil {
			return id
		}
	}
	return 0
}

// Ready tells the supervisor this worker is ready to serve (READY=1 on
// the notify socket, for `readiness: notify`). Without a notify socket it
// does nothing.
func (w *Worker) Ready() error {
	if w.notify == "" {
		return nil
	}
	return notify.SendTo(w.notify, "READY=1")
}

// Send sends v, encoded as JSON, to the supervisor (Node's process.send).
// It fails when the worker has no IPC channel.
func (w *Worker) Send(v any) error {
	if w.ch == nil {
		return w.chErr
	}
	return w.ch.write(v)
}

// Messages returns the channel on which the supervisor's messages arrive
// (Node's process.on('message')); a message arriving while 64 wait unread
// is dropped. Without an IPC channel it is nil.
func (w *Worker) Messages() <-chan json.RawMessage {
	if w.ch == nil {
		return nil
	}
	return w.ch.messages
}

// Disconnecting is closed when the supervisor asks this worker to leave
// (cluster's disconnect), or the IPC channel ends: the listeners from
// Listen are closed by then; finish the requests in progress and exit.
// Without an IPC channel it is nil.
func (w *Worker) Disconnecting() <-chan struct{} {
	if w.ch == nil {
		return nil
	}
	return w.ch.disconnecting
}

// Listen returns a listener for network ("tcp", "tcp4", "tcp6" or "unix")
// and address as net.Listen takes them. Under paddock with an IPC channel
// the supervisor decides, as Node's cluster primary does: connections are
// handed over one by one (rr, sticky), or the socket is shared (none) or
// the worker's own (reuseport). With LISTEN_FDS sockets (and no channel),
// the first inherited socket on the same port (or unix path) is used.
// Otherwise it is net.Listen. It blocks until the supervisor answers.
func (w *Worker) Listen(network, address string) (net.Listener, error) {
	if w.clusterListen {
		if w.ch == nil {
			return nil, w.chErr
		}
		return w.ch.listen(network, address)
	}
	if l := w.takeInherited(network, address); l != nil {
		return l, nil
	}
	return net.Listen(network, address)
}

// takeInherited returns the first inherited socket for the address that
// no Listen took yet, or nil.
func (w *Worker) takeInherited(network, address string) net.Listener {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, l := range w.inherited {
		if l != nil && sameAddr(network, address, l.Addr()) {
			w.inherited[i] = nil
			return l
		}
	}
	return nil
}

// inheritedListeners takes the LISTEN_FDS sockets (descriptors 3 on) when
// they are this process's (LISTEN_PID), as sd_listen_fds does; nil when
// there are none. A descriptor that is not a stream socket (a `udp:`
// address's datagram socket) is left open, untouched, for the program to
// take itself (net.FilePacketConn).
func inheritedListeners() []net.Listener {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil
	}
	var ls []net.Listener
	for i := range n {
		if typ, err := unix.GetsockoptInt(3+i, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
			continue
		}
		f := os.NewFile(uintptr(3+i), "LISTEN_FDS")
		l, err := net.FileListener(f)
		f.Close()
		if err == nil {
			ls = append(ls, l)
		}
	}
	return ls
}

func sameAddr(network, address string, a net.Addr) bool {
	if strings.HasPrefix(network, "unix") {
		return a.Network() == "unix" && a.String() == address
	}
	_, port, err := net.SplitHostPort(address)
	ta, ok := a.(*net.TCPAddr)
	return err == nil && ok && port == strconv.Itoa(ta.Port)
}

// openChannel opens the IPC channel on descriptor fdEnv (NODE_CHANNEL_FD),
// starts its reader and says the worker is online. It returns
// ErrNoChannel when fdEnv is not a number.
func openChannel(fdEnv string) (*channel, error) {
	fd, err := strconv.Atoi(fdEnv)
	if err != nil {
		return nil, ErrNoChannel
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "ipc")
	c, err := nodeipc.NewConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	ch := newChannel(c)
	go ch.read()
	_ = ch.cluster(map[string]any{"act": "online"}, nil)
	return ch, nil
}
