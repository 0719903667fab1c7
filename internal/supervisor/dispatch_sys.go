package supervisor

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls of the dispatcher's hot path. They are made with
// RawSyscall, outside of the scheduler's system-call bookkeeping
// (entersyscall/exitsyscall, which also wakes the runtime's monitor thread
// when it sleeps): each is non-blocking and returns at once, so no other
// goroutine needs the thread's P meanwhile. Profiles of the rr handoff
// showed that bookkeeping as a large part of paddock's cost per
// connection (docs/benchmarks.md).

// accept4 accepts a connection on the non-blocking listening socket fd,
// close-on-exec, and returns its descriptor and, when addr is set, the
// client's IP address (unmapped; the zero Addr for a unix socket). It
// returns unix.EAGAIN when none is queued.
func accept4(fd int, addr bool) (int, netip.Addr, error) {
	if !addr {
		nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
		if e != 0 {
			return -1, netip.Addr{}, e
		}
		return int(nfd), netip.Addr{}, nil
	}
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)), unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.Addr{}, e
	}
	return int(nfd), rawSockaddrIP(&rsa), nil
}

// rawSockaddrIP returns the IP address of a TCP peer, unmapped; the zero
// Addr for any other.
func rawSockaddrIP(rsa *unix.RawSockaddrAny) netip.Addr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(rsa)).Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(rsa)).Addr).Unmap()
	}
	return netip.Addr{}
}

// closeFD closes fd, a connection's descriptor of paddock's own (closing
// a socket without SO_LINGER never blocks).
func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}
