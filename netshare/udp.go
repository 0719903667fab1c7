package netshare

import (
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
)

// DatagramOptions are the options of a UDP socket that BindDatagram binds,
// those a Node worker's dgram socket asks its cluster primary for.
type DatagramOptions struct {
	// ReuseAddr sets SO_REUSEADDR (Node's reuseAddr, libuv's
	// UV_UDP_REUSEADDR on Linux): another socket that sets it too may
	// bind the same address and port.
	ReuseAddr bool
	// IPv6Only sets IPV6_V6ONLY on an IPv6 socket (Node's ipv6Only): it
	// receives no IPv4 datagrams, and leaves the port free on IPv4
	// addresses. Without it an IPv6 socket is dual-stack.
	IPv6Only bool
}

// BindDatagram binds a UDP socket to l's address (l.Network "udp"; an
// empty host is every interface, IPv4 and IPv6) with o's options, outside
// any Pool: the caller owns the socket and closes it. It is close-on-exec
// and in blocking mode. It returns the socket and the address bound (the
// port the kernel chose for port 0); its errors are *BindError.
func BindDatagram(l manifest.Listen, o DatagramOptions) (*os.File, *net.UDPAddr, error) {
	return bindUDP(l, o)
}

// bindUDP creates a UDP socket bound to l's address, as BindDatagram.
// Without SO_REUSEADDR no other socket can bind the address beside it
// (UDP has no TIME_WAIT that would call for it), so that a stranger
// cannot take a share of the datagrams.
func bindUDP(l manifest.Listen, o DatagramOptions) (f *os.File, addr *net.UDPAddr, err error) {
	defer func() {
		if err != nil {
			err = &BindError{Listen: l, Err: err}
		}
	}()
	ap, err := resolveTCP(l.Address)
	if err != nil {
		return nil, nil, err
	}
	family, sa := sockaddr(ap.Addr().Is4(), ap.Addr().As16(), int(ap.Port()))
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if o.ReuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return nil, nil, err
		}
	}
	if family == unix.AF_INET6 {
		if err := setV6Only(fd, o.IPv6Only); err != nil {
			return nil, nil, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, nil, err
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return nil, nil, err
	}
	ok = true
	return os.NewFile(uintptr(fd), "udp "+l.Raw), udpAddr(bound), nil
}

// udpAddr is the address of a bound UDP socket as getsockname gives it.
func udpAddr(sa unix.Sockaddr) *net.UDPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.UDPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.UDPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	}
	return &net.UDPAddr{}
}

// sockaddr returns the address family and the socket address of an IP
// address (as16, an IPv4 one when is4) and port.
func sockaddr(is4 bool, as16 [16]byte, port int) (int, unix.Sockaddr) {
	if is4 {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], as16[12:])
		return unix.AF_INET, sa
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: as16}
}
