package netshare

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A Group is the SO_REUSEPORT group of one reuseport address: the sockets
// bound there for workers (its members), and which of them take new
// connections. Left alone, the kernel spreads a group's new connections
// over every member by a hash, a worker still starting up or already
// retiring included. A Group steers them instead, with a classic BPF
// program attached to the group (SO_ATTACH_REUSEPORT_CBPF, which needs no
// privilege), to the members marked ready only.
//
// The program answers with an index into the kernel's array of the group's
// listening sockets (net/core/sock_reuseport.c), so the Group models that
// array:
//
//   - a socket is appended when it starts listening (Join);
//   - when one stops listening (it is unhashed: its last descriptor is
//     closed, or shutdown(2) is called on it) the last socket of the array
//     is moved into its slot.
//
// The model holds only while the Group alone changes the membership. So it
// keeps a descriptor of its own on every member for as long as the member
// is one: a worker closing its copy, or dying, does not unhash the socket.
// A member leaves the group only by Remove, which calls shutdown(2) (so
// that a descriptor leaked to another process cannot keep it in). Workers
// must not shutdown(2) the sockets they are given, and nothing else may
// listen on the address with SO_REUSEPORT as paddock's user.
//
// The anchor (bound, never listening) is not a member: a socket that does
// not listen is not in the kernel's array.
//
// A Group is not safe for concurrent use: the supervisor's state-owning
// goroutine uses it.
type Group struct {
	anchor *Socket
	// members is the kernel's array: members[i] is its socks[i].
	members []*Member
}

// A Member is one socket of a Group, bound and listening for one worker.
type Member struct {
	group *Group
	// file is the Group's own descriptor on the socket, which keeps it in
	// the group until Remove.
	file  *os.File
	ready bool
	gone  bool
}

// SteerError is a change of a Group's membership or readiness that was
// made, while the program steering the group's connections could not be
// attached: until a later change attaches one, the kernel spreads new
// connections by its hash over every member, ready or not.
type SteerError struct {
	Address string
	Err     error
}

func (e *SteerError) Error() string {
	return fmt.Sprintf("steer the SO_REUSEPORT group of %s to its ready workers: %v", e.Address, e.Err)
}

func (e *SteerError) Unwrap() error { return e.Err }

// Group returns the SO_REUSEPORT group of a reuseport anchor (a socket from
// Acquire with reuseport set), creating it the first time; nil for any
// other socket.
func (s *Socket) Group() *Group {
	if s.Listening || s.Listen.Network != "tcp" {
		return nil
	}
	if s.group == nil {
		s.group = &Group{anchor: s}
	}
	return s.group
}

// Join binds a new SO_REUSEPORT socket at the anchor's address and makes it
// listen, which appends it to the kernel's array; it is not ready (it gets
// no new connection while another member is ready). It returns the member
// and a duplicate descriptor for the worker, which the caller passes on and
// closes; the Group keeps its own.
//
// When err is a *SteerError the socket did join, and m and worker are
// valid; any other error means nothing changed.
func (g *Group) Join() (m *Member, worker *os.File, err error) {
	f, _, err := bind(g.anchor.Listen, g.anchor.Addr.String(), true, true, g.anchor.V6Only)
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		// Closing f unhashes it: the last member moves into its slot,
		// and since it is the last, nothing moves.
		f.Close()
		return nil, nil, &BindError{Listen: g.anchor.Listen, Err: err}
	}
	m = &Member{group: g, file: f}
	g.members = append(g.members, m)
	// A new socket may have made a new kernel group (the others had all
	// gone) with no program: attach one in any case.
	return m, os.NewFile(uintptr(fd), "listen "+g.anchor.Listen.Raw), g.steer(g.steering(g.members, nil))
}

// SetReady marks m ready (it takes new connections) or not (it takes none
// while another member is ready), and attaches the program for it. The
// change holds for connections whose SYN arrives after SetReady returned.
// It does nothing after Remove. Its errors are *SteerError.
func (m *Member) SetReady(ready bool) error {
	g := m.group
	if m.gone || m.ready == ready {
		return nil
	}
	m.ready = ready
	return g.steer(g.steering(g.members, nil))
}

// Remove takes m out of the group: its socket stops listening and the
// connections in its accept queue are moved to other members by the
// kernel when net.ipv4.tcp_migrate_req is on (by the kernel's hash over
// the listening members, ready or not: a classic BPF program cannot choose
// those), else reset. Call it once the worker no longer accepts on the
// socket: it has exited, or it closed that server.
//
// The kernel moves the last socket of its array into m's slot. To keep
// new connections on ready members across that swap, Remove first
// attaches a program valid before and after it (one that avoids m's index
// and the last one), then shuts the socket down, then attaches the program
// for the new layout. When the last member is the only other ready one,
// the first program names it: valid until the swap, after which the index
// is out of range and the kernel hashes over every member until the new
// program is attached, two system calls later. Calls after the first do
// nothing. Its errors (a *SteerError, a failed shutdown) change nothing:
// the member is removed whatever they say.
func (m *Member) Remove() error {
	g := m.group
	if m.gone {
		return nil
	}
	m.gone = true
	i := g.index(m)
	last := len(g.members) - 1
	var errs []error
	if last > 0 {
		errs = append(errs, g.steer(g.steering(g.members, map[int]bool{i: true, last: true}, last)))
	}
	// shutdown unhashes the socket at once, whoever else holds it.
	if err := unix.Shutdown(int(m.file.Fd()), unix.SHUT_RD); err != nil && err != unix.ENOTCONN {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	m.file.Close()
	g.members[i] = g.members[last]
	g.members = g.members[:last]
	if len(g.members) > 0 {
		errs = append(errs, g.steer(g.steering(g.members, nil)))
	}
	return errors.Join(errs...)
}

func (g *Group) index(m *Member) int {
	for i, x := range g.members {
		if x == m {
			return i
		}
	}
	return -1
}

// noSocket is an index out of any group's range: the kernel then picks by
// its hash over every listening member.
const noSocket = 0xffffffff

// maxSteered bounds the ready members a program names, so that it fits
// the kernel's 4096 instructions (2 per member, plus 1). Beyond it, the
// members after the first maxSteered ready ones get no new connection.
const maxSteered = (unix.BPF_MAXINSNS - 1) / 2

// steering returns the kernel indexes of layout's ready members, without
// those in skip. When skip leaves nothing and fallback (an index into
// layout) is ready and not the only skipped index, it is used alone:
// Remove's transitional program prefers it, valid until the swap, to the
// kernel's hash over every member.
func (g *Group) steering(layout []*Member, skip map[int]bool, fallback ...int) []uint32 {
	var idx []uint32
	for i, m := range layout {
		if m.ready && !m.gone && !skip[i] && len(idx) < maxSteered {
			idx = append(idx, uint32(i))
		}
	}
	if len(idx) == 0 {
		for _, i := range fallback {
			if layout[i].ready && !layout[i].gone {
				idx = append(idx, uint32(i))
			}
		}
	}
	return idx
}

// program returns a classic BPF program that answers one of idx at random,
// uniformly, or noSocket when idx is empty:
//
//	ld  rand              ; A = a random 32-bit number
//	mod #len(idx)         ; A = A % len(idx)
//	jeq #0, 0, 1          ; A == 0?
//	ret #idx[0]
//	...
//	ret #idx[len(idx)-1]
func program(idx []uint32) []unix.SockFilter {
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	switch len(idx) {
	case 0:
		return []unix.SockFilter{ret(noSocket)}
	case 1:
		return []unix.SockFilter{ret(idx[0])}
	}
	// SKF_AD_OFF + SKF_AD_RANDOM (linux/filter.h: -0x1000 + 56, as the
	// unsigned k field holds it): an ancillary load of a random number.
	const skfAdRandom = 0xfffff000 + 56
	p := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdRandom},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(len(idx))},
	}
	for n, k := range idx[:len(idx)-1] {
		p = append(p, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(n), Jt: 0, Jf: 1}, ret(k))
	}
	return append(p, ret(idx[len(idx)-1]))
}

// steer attaches the program answering idx to the group, through one of
// its members' descriptors (the program belongs to the kernel's group,
// whichever member it is attached through; attaching through the anchor,
// which is in no group, would make it a group of its own).
func (g *Group) steer(idx []uint32) error {
	var through *Member
	for _, m := range g.members {
		if !m.gone {
			through = m
			break
		}
	}
	if through == nil {
		return nil
	}
	if err := attach(through.file, program(idx)); err != nil {
		return &SteerError{Address: g.anchor.Addr.String(), Err: err}
	}
	return nil
}

// attach attaches prog to the SO_REUSEPORT group of the listening socket f.
func attach(f *os.File, prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.SetsockoptSockFprog(int(f.Fd()), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
}
