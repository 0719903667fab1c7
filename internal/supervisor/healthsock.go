package supervisor

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/procs"
)

// This file holds the loopback socket of a worker's own that a health
// check with `port: worker` probes (issue 17): with shared or per-worker
// kernel sockets, a probe to the app's address reaches whichever worker
// the kernel picks, so each worker gets an address nobody else serves.

// Variables that name a worker's health socket in its environment.
const (
	// HealthFDEnv is the descriptor number of the socket, after the
	// LISTEN_FDS sockets and the IPC channel, and not counted in
	// LISTEN_FDS: a program that takes descriptors 3 to 3+LISTEN_FDS-1
	// is unaffected.
	HealthFDEnv = "PADDOCK_HEALTH_FD"
	// HealthAddrEnv is its address, 127.0.0.1:PORT.
	HealthAddrEnv = "PADDOCK_HEALTH_ADDR"
	// WorkerPIDEnv is the worker's pid, in an exec probe's environment.
	WorkerPIDEnv = "PADDOCK_WORKER_PID"
)

// healthBacklog is the listen backlog of a health socket: probes come one
// at a time.
const healthBacklog = 16

// listenHealth binds a listening TCP socket on 127.0.0.1, on a port the
// kernel chooses, for worker name's health probes. The descriptor is
// close-on-exec (the worker gets it as an ExtraFile) and blocking, as
// systemd hands sockets over; paddock never accepts on it.
func listenHealth(name string) (*os.File, string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("health socket of %s: %w", name, err)
	}
	fail := func(what string, err error) (*os.File, string, error) {
		unix.Close(fd)
		return nil, "", fmt.Errorf("health socket of %s: %s: %w", name, what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind 127.0.0.1:0", err)
	}
	if err := unix.Listen(fd, healthBacklog); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fail("getsockname", fmt.Errorf("not an IPv4 address: %T", sa))
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port))
	return os.NewFile(uintptr(fd), "health "+addr), addr, nil
}

// withHealthSocket hands f, the worker's health socket at addr, to the
// worker described by spec: the last of its descriptors (after its
// sockets and its IPC channel), named by PADDOCK_HEALTH_FD and
// PADDOCK_HEALTH_ADDR. It returns the descriptor number.
func withHealthSocket(spec *procs.Spec, f *os.File, addr string) int {
	spec.ExtraFiles = append(spec.ExtraFiles, f)
	fd := 2 + len(spec.ExtraFiles)
	spec.Env = append(spec.Env, HealthFDEnv+"="+strconv.Itoa(fd), HealthAddrEnv+"="+addr)
	return fd
}
