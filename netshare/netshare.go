// Package netshare owns the listening sockets that workers share, so that
// restarts and rolling updates never refuse or drop a connection: a socket
// is bound by the supervisor when an app is applied, handed to each worker
// the systemd way (descriptors from 3, LISTEN_FDS, LISTEN_FDNAMES,
// LISTEN_PID), and kept open, with its accept queue, while workers come and
// go.
//
// Sockets are created with raw system calls, not the net package, so that
// their options are exactly what a worker expects of an inherited socket:
// blocking mode (the worker chooses), close-on-exec in the supervisor
// (passed to a worker explicitly), SO_REUSEADDR, IPV6_V6ONLY off for "every
// interface", and SO_REUSEPORT where the scheduling policy wants one socket
// per worker.
package netshare

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
)

// Backlog is the accept queue length asked for; the kernel caps it at
// net.core.somaxconn.
const Backlog = 4096

// Socket is a socket held by the supervisor.
type Socket struct {
	// Listen is the manifest address it was bound for.
	Listen manifest.Listen
	// File is the socket; pass it to workers as an ExtraFile.
	File *os.File
	// Addr is the address actually bound (the port chosen for port 0).
	Addr net.Addr
	// Listening is false for a reuseport anchor: bound to reserve the
	// address, never accepting.
	Listening bool
	refs      int
	pool      *Pool
	key       string
}

// Pool holds the supervisor's sockets by address, with reference counts:
// the apps that list an address and the workers that were given its socket
// each hold a reference, and the socket is closed when the last one goes.
// A Pool is not safe for concurrent use: the supervisor's state-owning
// goroutine uses it.
type Pool struct {
	socks map[string]*Socket
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{socks: map[string]*Socket{}} }

// Acquire returns the pool's socket for l, binding it first if there is
// none, and takes a reference to it. For reuseport the pool's socket is an
// anchor: bound with SO_REUSEPORT and not listening, so that it reserves the
// address (and, for port 0, the port) without ever receiving a connection;
// each worker then gets its own socket from BindWorker. An ephemeral port
// (port 0) is a socket of its own for each owner (app and list index), kept
// across reloads like any other.
func (p *Pool) Acquire(l manifest.Listen, reuseport bool, owner string) (*Socket, error) {
	key := l.Key()
	if l.Network == "tcp" && l.Port() == 0 {
		key += "#" + owner
	}
	if reuseport {
		key += "/reuseport"
	}
	if s, ok := p.socks[key]; ok {
		s.refs++
		return s, nil
	}
	f, addr, err := bind(l, l.Address, reuseport, !reuseport)
	if err != nil {
		return nil, err
	}
	s := &Socket{Listen: l, File: f, Addr: addr, Listening: !reuseport, refs: 1, pool: p, key: key}
	p.socks[key] = s
	return s, nil
}

// Ref takes one more reference to s.
func (s *Socket) Ref() *Socket {
	s.refs++
	return s
}

// Release drops a reference to s; the last one closes it (and removes a
// unix socket's file).
func (s *Socket) Release() {
	s.refs--
	if s.refs > 0 {
		return
	}
	delete(s.pool.socks, s.key)
	s.close()
}

func (s *Socket) close() {
	s.File.Close()
	if s.Listen.Network == "unix" {
		os.Remove(s.Listen.Address)
	}
}

// Len returns the number of sockets held.
func (p *Pool) Len() int { return len(p.socks) }

// BindWorker binds and listens on a new SO_REUSEPORT socket for one worker,
// at the address of anchor (a reuseport socket from Acquire). The kernel
// spreads new connections evenly over the group of such sockets.
func BindWorker(anchor *Socket) (*os.File, error) {
	f, _, err := bind(anchor.Listen, anchor.Addr.String(), true, true)
	return f, err
}

// Name returns the LISTEN_FDNAMES entry for s: the port of a TCP socket
// (as bound), the file name of a unix socket; names may not contain ':'.
func (s *Socket) Name() string {
	if a, ok := s.Addr.(*net.TCPAddr); ok {
		return strconv.Itoa(a.Port)
	}
	return filepath.Base(s.Listen.Address)
}

// BindError is a socket that could not be bound.
type BindError struct {
	Listen manifest.Listen
	Err    error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("cannot listen on %s: %v", e.Listen.Raw, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// bind creates a socket bound to address (l's, or the concrete one of an
// anchor), listening when listen is set.
func bind(l manifest.Listen, address string, reuseport, listen bool) (f *os.File, addr net.Addr, err error) {
	defer func() {
		if err != nil {
			err = &BindError{Listen: l, Err: err}
		}
	}()
	if l.Network == "unix" {
		return bindUnix(l)
	}
	ap, err := resolveTCP(address)
	if err != nil {
		return nil, nil, err
	}
	family := unix.AF_INET6
	if ap.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, nil, err
	}
	if reuseport {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return nil, nil, err
		}
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		// Every interface means IPv4 and IPv6 alike, as Node's listen().
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return nil, nil, err
		}
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, nil, err
	}
	if listen {
		if err := unix.Listen(fd, Backlog); err != nil {
			return nil, nil, err
		}
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return nil, nil, err
	}
	ok = true
	return os.NewFile(uintptr(fd), "listen "+l.Raw), tcpAddr(bound), nil
}

// resolveTCP turns "host:port" ("" host: every interface) into an address.
func resolveTCP(address string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ip := netip.IPv6Unspecified()
	if host != "" && host != "::" {
		if ip, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

func tcpAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	}
	return nil
}

// bindUnix binds a unix socket at l.Address with l.Mode. It is bound under
// a temporary name, given its mode, then renamed into place, so the socket
// is never reachable with looser permissions. A stale socket file (nothing
// accepts on it) is replaced; a live one is EADDRINUSE.
func bindUnix(l manifest.Listen) (*os.File, net.Addr, error) {
	path := l.Address
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, nil, unix.EADDRINUSE
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.paddock-%d", filepath.Base(path), os.Getpid()))
	if len(tmp) > 107 {
		tmp = path // no room for a temporary name: bind in place
	}
	os.Remove(tmp)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: tmp}); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(tmp, os.FileMode(l.Mode)); err != nil {
		os.Remove(tmp)
		return nil, nil, err
	}
	if tmp != path {
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return nil, nil, err
		}
	}
	if err := unix.Listen(fd, Backlog); err != nil {
		os.Remove(path)
		return nil, nil, err
	}
	ok = true
	return os.NewFile(uintptr(fd), "listen "+l.Raw), &net.UnixAddr{Name: path, Net: "unix"}, nil
}

// EnableMigration turns on net.ipv4.tcp_migrate_req in this network
// namespace when it is off, so that closing one SO_REUSEPORT socket of a
// group hands the connections in its accept queue to the others instead of
// resetting them. It reports whether migration is on.
func EnableMigration() (bool, error) {
	const path = "/proc/sys/net/ipv4/tcp_migrate_req"
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("tcp_migrate_req (Linux 5.14 and later): %w", err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return true, nil
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return false, fmt.Errorf("enable %s: %w", path, err)
	}
	return true, nil
}
