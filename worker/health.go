package worker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// This file holds the worker's health socket: a loopback socket of its
// own that paddock hands it when its app's healthCheck probes `port:
// worker`, so that a probe reaches this worker and no other whatever the
// scheduling policy.

// ErrNoHealthSocket is returned by HealthListener when paddock gave this
// process no health socket: not run by paddock, or the app's healthCheck
// does not probe `port: worker`.
var ErrNoHealthSocket = errors.New("worker: no health socket (PADDOCK_HEALTH_FD; the app's healthCheck probes port: worker)")

// errHealthTaken is returned by HealthListener once the socket is taken.
var errHealthTaken = errors.New("worker: the health socket was taken already")

// HealthListener returns a listener on this worker's own health socket
// (PADDOCK_HEALTH_FD, at PADDOCK_HEALTH_ADDR, 127.0.0.1 and a port paddock
// chose), on which paddock's probes of `healthCheck: {http: {port:
// worker}}` arrive: serve the health check there. The first call takes
// the socket; later calls fail. Without one it returns ErrNoHealthSocket.
func (w *Worker) HealthListener() (net.Listener, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, err := w.health, w.healthErr
	if l != nil {
		w.health, w.healthErr = nil, errHealthTaken
	}
	return l, err
}

// healthListener takes the health socket that PADDOCK_HEALTH_FD names,
// making it close-on-exec, when it is a socket bound to
// PADDOCK_HEALTH_ADDR; otherwise it leaves the descriptor alone and
// returns ErrNoHealthSocket, or why the socket cannot be used.
func healthListener() (net.Listener, error) {
	fd, err := strconv.Atoi(os.Getenv("PADDOCK_HEALTH_FD"))
	addr := os.Getenv("PADDOCK_HEALTH_ADDR")
	if err != nil || fd < 3 || addr == "" {
		return nil, ErrNoHealthSocket
	}
	// A variable inherited from elsewhere must not make this process take
	// a descriptor that is not the socket named.
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, ErrNoHealthSocket
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok || net.JoinHostPort(net.IP(in4.Addr[:]).String(), strconv.Itoa(in4.Port)) != addr {
		return nil, ErrNoHealthSocket
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "health")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("worker: health socket %s: %w", addr, err)
	}
	return l, nil
}
