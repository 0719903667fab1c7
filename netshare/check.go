package netshare

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/unixsock"
	"github.com/paddock-sh/paddock/manifest"
)

// ErrInUse is wrapped by the error Check returns when another process holds
// the address: a TCP or UDP address that cannot be bound (EADDRINUSE), a unix
// socket path where a live socket answers (unixsock.ErrInUse), or where
// something else than a socket is (unixsock.ErrNotSocket).
var ErrInUse = errors.New("the address is taken on this host")

// inUseError marks a BindError's cause as the address being taken.
type inUseError struct{ err error }

func (e inUseError) Error() string        { return e.err.Error() }
func (e inUseError) Unwrap() error        { return e.err }
func (e inUseError) Is(target error) bool { return target == ErrInUse }

// Check tells whether Pool.Acquire could bind l on this host now, without
// keeping anything: it is for `paddock validate`, which must leave no
// socket or file behind. A TCP address is bound as Acquire binds it (with
// SO_REUSEADDR, and SO_REUSEPORT when reuseport is set, listening unless
// reuseport) and closed at once: a connection that arrives in that instant
// is reset, as it would be refused with nothing there; a UDP address is
// bound as Acquire binds it and closed likewise. A unix path is only
// looked at: a socket file found there is probed with a connect, and, as
// for Acquire, only ECONNREFUSED makes it stale (Acquire would replace it;
// Check removes nothing). An ephemeral port (0) is always free.
//
// It returns nil when the address is free, or a *BindError: one that
// matches ErrInUse when another process holds the address, another (such
// as EACCES for a privileged port, EADDRNOTAVAIL for an address of another
// host) when binding would fail for a reason of its own.
func Check(l manifest.Listen, reuseport bool) error {
	if l.Network == "unix" {
		return checkUnix(l)
	}
	if l.Port() == 0 {
		return nil
	}
	var f *os.File
	var err error
	if l.Network == "udp" {
		f, _, err = bindUDP(l, DatagramOptions{})
	} else {
		f, _, err = bind(l, l.Address, reuseport, !reuseport, false)
	}
	if err != nil {
		var be *BindError
		if errors.As(err, &be) && errors.Is(be.Err, unix.EADDRINUSE) {
			be.Err = inUseError{be.Err}
		}
		return err
	}
	f.Close()
	return nil
}

// checkUnix looks at the path of a unix address as unixsock.Listen would
// before binding it, without removing anything.
func checkUnix(l manifest.Listen) error {
	var st unix.Stat_t
	switch err := unix.Lstat(l.Address, &st); {
	case err == unix.ENOENT:
		return nil
	case err != nil:
		return &BindError{Listen: l, Err: err}
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return &BindError{Listen: l, Err: inUseError{unixsock.ErrNotSocket}}
	}
	switch err := unixsock.Probe(l.Address); err {
	case unix.ECONNREFUSED, unix.ENOENT:
		return nil // stale, or gone since
	default:
		return &BindError{Listen: l, Err: inUseError{&unixsock.InUseError{Path: l.Address, Err: err}}}
	}
}
