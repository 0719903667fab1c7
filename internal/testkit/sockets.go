package testkit

import (
	"errors"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BusyUnixSocket binds a unix socket at path whose accept queue is full:
// it listens with a backlog of 0 and is connected to until the kernel
// refuses more (EAGAIN), and nothing ever accepts. A probe of it neither
// succeeds nor is refused, as for a live server that is overloaded. It is
// closed when the test ends; the file at path stays.
func BusyUnixSocket(t testing.TB, path string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		c, err := net.Dial("unix", path)
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		if err != nil || i == 100 {
			t.Fatalf("filling the backlog of %s: %v", path, err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// Pipe returns the write end of a pipe that stays open until the test
// ends: a descriptor for a test to send or hand over.
func Pipe(t testing.TB) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return w
}

// StaleUnixSocket leaves a unix socket file at path that nobody listens
// on, as a server that died does: a connect to it is refused.
func StaleUnixSocket(t testing.TB, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

// ListenerFile returns the file of a TCP socket listening on a loopback
// port chosen by the kernel, open until the test ends, and its address: a
// listening socket to hand to a child, as a supervisor does.
func ListenerFile(t testing.TB) (*os.File, net.Addr) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr()
}
