package nodeipc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The reads and the immediate writes of a channel are made with
// RawSyscall, outside of the scheduler's system-call bookkeeping: the
// socket is non-blocking, so each call returns at once and no other
// goroutine needs the thread's P meanwhile. The bookkeeping
// (entersyscall/exitsyscall) also wakes the runtime's monitor thread
// whenever the process was idle, which then polls every 20 µs for a
// millisecond: for a channel that carries a message every few hundred
// microseconds (a connection handed to a worker, and its answer) that was
// a large part of the supervisor's CPU time.

// recvmsg reads from the non-blocking socket fd into p, and control
// messages into oob, as recvmsg(2) with flags; it returns the bytes read,
// the bytes of control messages and the flags of the message.
func recvmsg(fd int, p, oob []byte, flags int) (n, oobn, recvflags int, err error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

// rightsLen is the length of a control message carrying one descriptor.
var rightsLen = unix.CmsgSpace(4)

// sendmsg writes p to the non-blocking socket fd as sendmsg(2) with
// flags, with the descriptor rights riding on it when rights >= 0, and
// returns how many bytes went.
func sendmsg(fd int, p []byte, rights int, flags int) (int, error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	// A control message with one descriptor, built on the stack (aligned:
	// uint64s): its header, then the descriptor.
	var oob [4]uint64
	if rights >= 0 {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&oob[0])), len(oob)*8)[:rightsLen]
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level = unix.SOL_SOCKET
		h.Type = unix.SCM_RIGHTS
		h.SetLen(unix.CmsgLen(4))
		*(*int32)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = int32(rights)
		msg.Control = &b[0]
		msg.SetControllen(rightsLen)
	}
	r, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
