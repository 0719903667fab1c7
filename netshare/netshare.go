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
// per worker. The sockets of one SO_REUSEPORT address form a Group, which
// steers new connections to the workers that are ready. Unix sockets are
// bound by internal/unixsock, which never takes over a live one. UDP
// sockets (systemd's ListenDatagram=) are bound without SO_REUSEADDR and
// shared by every worker whatever the policy.
package netshare

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/unixsock"
	"github.com/paddock-sh/paddock/manifest"
)

// backlog is the accept queue length asked for; the kernel caps it at
// net.core.somaxconn.
const backlog = 4096

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
	// Replaced is true when binding a unix socket removed a stale socket
	// file (nothing listened on it) at its path.
	Replaced bool
	// V6Only is true for a socket on every interface bound IPv6 only
	// (Options.V6Only).
	V6Only   bool
	refs     int
	pool     *Pool
	key      string
	unixSock *unixsock.Socket // a unix socket's file, removed at close
	group    *Group           // a reuseport anchor's group, once asked for
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

// Options are what a socket may be asked for beyond its address: what a
// Node cluster worker's listen() asks of the socket paddock opens for it.
// The zero value is what `listen:` sockets get.
type Options struct {
	// V6Only binds a TCP socket on every interface ("::") to IPv6 alone
	// (IPV6_V6ONLY, Node's listen({ipv6Only: true})), so that 0.0.0.0 on
	// the same port stays free; the default takes IPv4 connections too.
	// It makes another socket than the default at the same address, and
	// means nothing for other addresses.
	V6Only bool
	// UmaskMode gives a unix socket's file the mode bind(2) gives it (0777
	// less the supervisor's umask) with the bits of the Listen's Mode
	// added, as Node's listen(path) does (readableAll, writableAll),
	// instead of exactly the Listen's Mode.
	UmaskMode bool
}

// Acquire returns the pool's socket for l with the default Options (see
// AcquireWith).
func (p *Pool) Acquire(l manifest.Listen, reuseport bool, owner string) (*Socket, error) {
	return p.AcquireWith(l, reuseport, owner, Options{})
}

// AcquireWith returns the pool's socket for l and opts, binding it first
// if there is none, and takes a reference to it. For reuseport the pool's socket is an
// anchor: bound with SO_REUSEPORT and not listening, so that it reserves the
// address (and, for port 0, the port) without ever receiving a connection;
// each worker then gets its own socket from BindWorker. An ephemeral port
// (port 0) is a socket of its own for each owner (app and list index), kept
// across reloads like any other. A listening socket asks for an accept
// queue of 4096 connections (the kernel caps it at net.core.somaxconn). A
// UDP address ("udp" network) is one SOCK_DGRAM socket whatever reuseport
// says: see bindUDP for its options.
func (p *Pool) AcquireWith(l manifest.Listen, reuseport bool, owner string, opts Options) (*Socket, error) {
	key := l.Key()
	if l.Network != "unix" && l.Port() == 0 {
		key += "#" + owner
	}
	if l.Network == "udp" {
		// One socket shared by every worker, whatever the policy: a
		// reuseport group of UDP sockets cannot be steered (see
		// manifest.App.Listen).
		reuseport = false
	}
	if reuseport {
		key += "/reuseport"
	}
	if opts.V6Only = opts.V6Only && l.Network == "tcp" && everyInterface(l.Address); opts.V6Only {
		key += "/v6only"
	}
	if s, ok := p.socks[key]; ok {
		s.refs++
		return s, nil
	}
	var s *Socket
	switch l.Network {
	case "unix":
		us, err := unixsock.Listen(l.Address, unixsock.Options{Mode: os.FileMode(l.Mode), AddToUmask: opts.UmaskMode, Backlog: backlog})
		if err != nil {
			return nil, &BindError{Listen: l, Err: err}
		}
		s = &Socket{Listen: l, File: us.File, Addr: &net.UnixAddr{Name: l.Address, Net: "unix"}, Listening: true,
			Replaced: us.Replaced, unixSock: us}
	case "udp":
		f, addr, err := bindUDP(l, DatagramOptions{})
		if err != nil {
			return nil, err
		}
		s = &Socket{Listen: l, File: f, Addr: addr, Listening: true}
	default:
		f, addr, err := bind(l, l.Address, reuseport, !reuseport, opts.V6Only)
		if err != nil {
			return nil, err
		}
		s = &Socket{Listen: l, File: f, Addr: addr, Listening: !reuseport, V6Only: opts.V6Only}
	}
	s.refs, s.pool, s.key = 1, p, key
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

// close closes the socket: a unix socket's file is removed (if it is still
// its own), and a reuseport anchor's members, if any were left, are taken
// out of the group.
func (s *Socket) close() {
	if s.group != nil {
		for len(s.group.members) > 0 {
			s.group.members[0].Remove()
		}
	}
	s.File.Close()
	if s.unixSock != nil {
		s.unixSock.Unlink()
	}
}

// Len returns the number of sockets held.
func (p *Pool) Len() int { return len(p.socks) }

// Name returns the LISTEN_FDNAMES entry for s: the port of a TCP or UDP
// socket (as bound), the file name of a unix socket; names may not
// contain ':'.
func (s *Socket) Name() string {
	switch a := s.Addr.(type) {
	case *net.TCPAddr:
		return strconv.Itoa(a.Port)
	case *net.UDPAddr:
		return strconv.Itoa(a.Port)
	}
	return filepath.Base(s.Listen.Address)
}

// String returns the address bound, as paddock status shows it:
// "127.0.0.1:8000", "[::]:8000", "/run/web.sock", and "udp:" before that of
// a UDP socket ("udp:[::]:5353").
func (s *Socket) String() string {
	if _, ok := s.Addr.(*net.UDPAddr); ok {
		return "udp:" + s.Addr.String()
	}
	return s.Addr.String()
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

// bind creates a TCP socket bound to address (l's, or the concrete one of
// an anchor), listening when listen is set; on every interface, IPv6 only
// when v6only is set, else IPv4 and IPv6.
func bind(l manifest.Listen, address string, reuseport, listen, v6only bool) (f *os.File, addr net.Addr, err error) {
	defer func() {
		if err != nil {
			err = &BindError{Listen: l, Err: err}
		}
	}()
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
	_, sa := sockaddr(ap.Addr().Is4(), ap.Addr().As16(), int(ap.Port()))
	if family == unix.AF_INET6 {
		// Every interface means IPv4 and IPv6 alike, as Node's listen(),
		// unless IPv6 alone is asked for.
		if err := setV6Only(fd, v6only); err != nil {
			return nil, nil, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, nil, err
	}
	if listen {
		if err := unix.Listen(fd, backlog); err != nil {
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

// setV6Only sets IPV6_V6ONLY on the IPv6 socket fd: on, it takes IPv6
// alone; off, IPv4 too (as IPv4-mapped addresses).
func setV6Only(fd int, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v)
}

// everyInterface reports whether a TCP address ("host:port") is on every
// interface: an empty host or "::".
func everyInterface(address string) bool {
	host, _, err := net.SplitHostPort(address)
	return err == nil && (host == "" || host == "::")
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
